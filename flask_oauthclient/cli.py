"""The ``flask oauth`` commands, added to the app's CLI by ``init_app``."""

from __future__ import annotations

import textwrap
import typing as t

import click
from flask import current_app
from flask import Flask
from flask import url_for
from flask.cli import AppGroup

from .providers import get_preset

if t.TYPE_CHECKING:
    from .extension import _State

#: Where ``flask run`` serves by default; the URLs are shown for it when the app has
#: no ``SERVER_NAME`` and no ``--base-url`` is given.
DEFAULT_BASE_URL = "http://127.0.0.1:5000"

oauth_cli = AppGroup("oauth", help="Flask-OAuthClient: the app's OAuth providers.")


@oauth_cli.command("providers")
@click.option(
    "--base-url",
    metavar="URL",
    help="The URL the site is reached at, e.g. https://app.example.com. Defaults to "
    "SERVER_NAME with PREFERRED_URL_SCHEME, or else to " + DEFAULT_BASE_URL + ".",
)
def providers_command(base_url: str | None) -> None:
    """List the registered providers with their login URL and the exact callback
    URL to register in each provider's developer console.

    \f
    .. versionadded:: 0.1
    """
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    state: _State | None = app.extensions.get("oauthclient")
    if state is None:
        raise click.ClickException(
            "Flask-OAuthClient is not set up on this app: call oauth.init_app(app)."
        )
    if not state.providers:
        click.echo(
            "No providers are registered: call oauth.register(...) before "
            "oauth.init_app(app)."
        )
        return

    hints: list[str] = []
    if base_url:
        context = app.test_request_context(base_url=base_url.rstrip("/") + "/")
    elif app.config.get("SERVER_NAME"):
        # Flask builds the base URL from SERVER_NAME, APPLICATION_ROOT and
        # PREFERRED_URL_SCHEME, as url_for does outside of a request.
        context = app.test_request_context()
    else:
        context = app.test_request_context(base_url=DEFAULT_BASE_URL + "/")
        hints.append(
            "SERVER_NAME is not set: these URLs are those of 'flask run' on "
            f"{DEFAULT_BASE_URL}. For the deployed site set SERVER_NAME (and "
            "PREFERRED_URL_SCHEME = 'https') or pass --base-url https://your.site."
        )

    insecure_callbacks = False
    with context:
        for name, ap in state.providers.items():
            preset = get_preset(name)
            login_url = url_for(f"{name}.login", _external=True)
            callback_url = url_for(f"{name}.authorized", _external=True)
            if callback_url.startswith("http://"):
                insecure_callbacks = True
            kind = "OpenID Connect" if ap.is_oidc else "OAuth 2"
            rows = [
                ("client id", _credential(ap.client_id, name, "CLIENT_ID")),
                ("client secret", _credential(ap.client_secret, name, "CLIENT_SECRET")),
                ("login URL", login_url),
                ("callback URL", callback_url),
                ("console", preset.console_url if preset else None),
            ]
            click.echo(f"{name} ({ap.title}, {kind})")
            for label, value in rows:
                if value:
                    click.echo(f"  {label + ':':<14} {value}")
            if preset is not None and preset.notes:
                click.echo(_wrap(preset.notes, "  notes:         "))
            click.echo()

    if insecure_callbacks and not state.insecure_transport:
        hints.append(
            "The callback URLs are plain http, which the extension refuses unless "
            "OAUTHCLIENT_INSECURE_TRANSPORT = True (local development only)."
        )
    for hint in hints:
        click.echo(_wrap(hint, "Hint: "))


def _wrap(text: str, label: str) -> str:
    # URLs in the text stay whole: no breaking at hyphens or inside long words.
    return textwrap.fill(
        text,
        width=88,
        initial_indent=label,
        subsequent_indent=" " * len(label),
        break_long_words=False,
        break_on_hyphens=False,
    )


def _credential(value: str | None, name: str, key: str) -> str:
    """Whether a credential is configured; never its value."""
    if value:
        return "set"
    config_key = f"OAUTHCLIENT_{name.upper()}_{key}"
    return f"missing (pass {key.lower()}= to register() or set {config_key})"
