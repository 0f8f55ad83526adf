"""The ``flask oauth`` commands. ``init_app`` adds a group that imports this module
only when the CLI lists or runs its commands, so an app serving requests never loads
it (nor what it imports)."""

from __future__ import annotations

import re
import textwrap
import typing as t
from contextlib import contextmanager
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import click
from flask import current_app
from flask import Flask
from flask import url_for
from flask.cli import AppGroup

from .encryption import current_cipher
from .encryption import is_encrypted
from .errors import ConfigurationError
from .providers import get_preset
from .state import AppState
from .state import get_state

if t.TYPE_CHECKING:
    import sqlalchemy as sa

    from .app_provider import AppProvider
    from .cipher import TokenCipher
    from .sqla import SQLAlchemyStorage

#: Where ``flask run`` serves by default; the URLs are shown for it when the app has
#: no ``SERVER_NAME`` and no ``--base-url`` is given.
DEFAULT_BASE_URL = "http://127.0.0.1:5000"

#: The commands; ``flask oauth`` (the extension's lazy group, with the help text)
#: looks them up here.
oauth_cli = AppGroup("oauth", help="Flask-OAuthClient: the app's OAuth providers.")


def _state(app: Flask) -> AppState:
    try:
        return get_state(app)
    except ConfigurationError:
        raise click.ClickException(
            "Flask-OAuthClient is not set up on this app: call oauth.init_app(app)."
        ) from None


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
    state = _state(app)
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
                _client_auth(ap, name),
                ("login URL", login_url),
                ("callback URL", callback_url),
                (
                    "callback by",
                    "POST from the provider (response_mode=form_post)"
                    if ap.response_mode == "form_post"
                    else None,
                ),
                ("console", preset.console_url if preset else None),
            ]
            click.echo(f"{name} ({ap.title}, {kind})")
            for label, value in rows:
                if value:
                    click.echo(f"  {label + ':':<14} {value}")
            if preset is not None and preset.notes:
                click.echo(_wrap(preset.notes, "  notes:         "))
            click.echo()

    if insecure_callbacks and not state.settings.insecure_transport:
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


def _client_auth(ap: AppProvider, name: str) -> tuple[str, str]:
    """How the client authenticates: its secret, or the key it signs with."""
    if ap.auth.method != "private_key_jwt":
        return "client secret", _credential(ap.client_secret, name, "CLIENT_SECRET")
    kid = ap.auth.keys[0].kid
    return "client auth", "private_key_jwt, private key set" + (
        f" (kid {kid})" if kid else " (no kid)"
    )


def _credential(value: str | None, name: str, key: str) -> str:
    """Whether a credential is configured; never its value."""
    if value:
        return "set"
    config_key = f"OAUTHCLIENT_{name.upper()}_{key}"
    return f"missing (pass {key.lower()}= to register() or set {config_key})"


# -- the tokens in an SQLAlchemyStorage ----------------------------------------------

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+)([smhdw])")


def parse_duration(value: str) -> timedelta:
    """``"30d"``, ``"12h"``, ``"1d12h"``, ``"90m"``, ``"45s"``, ``"2w"`` as a
    :class:`~datetime.timedelta`.

    :raises ValueError: not a duration.
    """
    text = value.strip().lower().replace(" ", "")
    parts = _DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(
            f"{value!r} is not a duration: use a number and a unit, s, m, h, d or w "
            "(e.g. 30d, 12h, 1d12h)."
        )
    return timedelta(seconds=sum(int(n) * _DURATION_UNITS[u] for n, u in parts))


def parse_cutoff(value: str, now: datetime) -> datetime:
    """An ISO 8601 date or date and time (UTC unless it has an offset), or a
    duration before ``now`` (see :func:`parse_duration`), as an aware UTC datetime.

    :raises ValueError: neither.
    """
    text = value.strip()
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    if text.endswith(("Z", "z")):  # fromisoformat reads "Z" only from Python 3.11
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{value!r} is neither an ISO date or time (2026-01-31, "
            "2026-01-31T12:00:00+01:00) nor a duration (30d, 12h)."
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def _duration_option(
    ctx: click.Context, param: click.Parameter, value: str
) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx=ctx, param=param) from None


def _sqla_storage(command: str) -> SQLAlchemyStorage:
    """The app's storage, if it is a :class:`SQLAlchemyStorage`."""
    from .sqla import SQLAlchemyStorage

    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    state = _state(app)
    storage = state.storage
    if not isinstance(storage, SQLAlchemyStorage):
        where = {
            "SessionStorage": "in each browser's session cookie",
            "MemoryStorage": "in the memory of each app process",
        }.get(type(storage).__name__, "somewhere this command can't reach")
        raise click.ClickException(
            f"'flask oauth {command}' works with SQLAlchemyStorage only. This app "
            f"uses {type(storage).__name__}, which keeps tokens {where}."
        )
    return storage


def _provider_filter(
    storage: SQLAlchemyStorage, providers: tuple[str, ...]
) -> tuple[sa.ColumnElement[bool], ...]:
    if not providers:
        return ()
    return (storage._table.c.provider.in_(providers),)


@oauth_cli.command("tokens")
@click.option(
    "--expiring-within",
    "window",
    default="1h",
    callback=_duration_option,
    show_default=True,
    metavar="DURATION",
    help="What counts as expiring soon: 30m, 12h, 7d ...",
)
@click.option(
    "--provider",
    "providers",
    multiple=True,
    metavar="NAME",
    help="Only this provider (repeat for several).",
)
def tokens_command(window: timedelta, providers: tuple[str, ...]) -> None:
    """Count the stored tokens per provider: expired, expiring soon, without an
    expiry time, without a refresh token, and the identity links kept after a
    logout. Works with SQLAlchemyStorage; never prints a token.

    \f
    .. versionadded:: 0.1
    """
    import sqlalchemy as sa

    storage = _sqla_storage("tokens")
    registered = get_state().providers
    c = storage._table.c
    now = datetime.now(timezone.utc)
    soon = now + window
    has_token = c.token.is_not(None)

    def count(*conditions: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return sa.func.count(sa.case((sa.and_(*conditions), 1)))

    where = _provider_filter(storage, providers)
    totals = sa.select(
        c.provider,
        count(has_token).label("tokens"),
        count(has_token, c.expires_at < now).label("expired"),
        count(has_token, c.expires_at >= now, c.expires_at < soon).label("expiring"),
        count(has_token, c.expires_at.is_(None)).label("no_expiry"),
        count(c.token.is_(None)).label("links"),
    )
    counts: dict[str, dict[str, int]] = {}
    cipher = current_cipher()
    unreadable = 0
    with _database_errors(), storage._engine().connect() as conn:
        for row in conn.execute(totals.where(*where).group_by(c.provider)):
            counts[row.provider] = {**row._mapping, "no_refresh": 0}
        # Whether a token has a refresh token is inside its JSON (encrypted, maybe):
        # read them a batch at a time, count, and forget them.
        tokens = sa.select(c.provider, c.token).where(has_token, *where)
        for row in conn.execution_options(yield_per=500).execute(tokens):
            token = _readable(row.token, cipher)
            if token is None:
                unreadable += 1
            elif not token.get("refresh_token"):
                counts[row.provider]["no_refresh"] += 1

    names = [n for n in registered if not providers or n in providers]
    names += sorted(n for n in counts if n not in registered)
    if not names:
        click.echo("No providers match.")
        return
    columns = [
        ("tokens", "tokens"),
        ("expired", "expired"),
        ("expiring", "expiring"),
        ("no expiry", "no_expiry"),
        ("no refresh", "no_refresh"),
        ("links only", "links"),
    ]
    empty = dict.fromkeys((key for _, key in columns), 0)
    table = [(n, counts.get(n, empty)) for n in names]
    if len(table) > 1:
        total = {key: sum(r[key] for _, r in table) for _, key in columns}
        table.append(("total", total))
    width = max(len("provider"), *(len(n) for n, _ in table))
    click.echo(
        f"{'provider':<{width}}" + "".join(f"  {label:>10}" for label, _ in columns)
    )
    for name, numbers in table:
        suffix = "" if name in registered or name == "total" else "  (not registered)"
        click.echo(
            f"{name:<{width}}"
            + "".join(f"  {numbers[key]:>10}" for _, key in columns)
            + suffix
        )
    click.echo()
    if unreadable:
        click.echo(
            _wrap(
                f"{unreadable} token(s) can't be decrypted with "
                "OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS: 'no refresh' leaves them out.",
                "Warning: ",
            )
        )
    click.echo(
        _wrap(
            f"expiring: within {_format_duration(window)} (--expiring-within). "
            "no expiry: the provider did not say when the token expires. "
            "links only: no token (the user logged out or the refresh was refused); "
            "the row still links the provider identity to the user.",
            "",
        )
    )


@oauth_cli.command("purge")
@click.option(
    "--expired-before",
    "expired_before",
    required=True,
    metavar="WHEN",
    help="An ISO date or time (2026-01-31, 2026-01-31T12:00:00+01:00; UTC without "
    "an offset) or a duration before now (30d, 12h, 2w).",
)
@click.option(
    "--provider",
    "providers",
    multiple=True,
    metavar="NAME",
    help="Only this provider (repeat for several).",
)
@click.option(
    "--unlink",
    is_flag=True,
    help="Delete the whole rows, forgetting which user each provider identity "
    "belongs to: a returning user then logs in as a new user.",
)
@click.option("--dry-run", is_flag=True, help="Count, but change nothing.")
def purge_command(
    expired_before: str, providers: tuple[str, ...], unlink: bool, dry_run: bool
) -> None:
    """Delete the stored tokens that expired before WHEN. Tokens without an expiry
    time are kept. By default each row stays as the link between the provider
    identity and the user (as after a logout), so returning users are recognized;
    rows without an identity are deleted. Works with SQLAlchemyStorage.

    \f
    .. versionadded:: 0.1
    """
    import sqlalchemy as sa

    storage = _sqla_storage("purge")
    now = datetime.now(timezone.utc)
    try:
        cutoff = parse_cutoff(expired_before, now)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--expired-before") from None
    # "Expired" means expired: a cutoff in the future purges no live token.
    cutoff = min(cutoff, now)
    table = storage._table
    c = table.c
    expired = (
        c.token.is_not(None),
        c.expires_at < cutoff,
        *_provider_filter(storage, providers),
    )
    linked = sa.and_(c.issuer.is_not(None), c.subject.is_not(None))
    keep_link = sa.false() if unlink else linked
    found = sa.select(
        c.provider,
        sa.func.count().label("tokens"),
        sa.func.count(sa.case((keep_link, 1))).label("kept"),
    )
    with _database_errors(), storage._engine().begin() as conn:
        per_provider = {
            row.provider: (row.tokens, row.kept)
            for row in conn.execute(found.where(*expired).group_by(c.provider))
        }
        if not dry_run and per_provider:
            if not unlink:
                conn.execute(
                    sa.update(table)
                    .where(*expired, linked)
                    .values(token=None, expires_at=None, updated_at=now)
                )
            conn.execute(sa.delete(table).where(*expired, sa.not_(keep_link)))
    tokens = sum(n for n, _ in per_provider.values())
    kept = sum(k for _, k in per_provider.values())
    when = cutoff.isoformat(timespec="seconds")
    if not tokens:
        click.echo(f"No token expired before {when}.")
        return
    detail = ", ".join(f"{p}: {n}" for p, (n, _) in sorted(per_provider.items()))
    verb = "Would purge" if dry_run else "Purged"
    click.echo(f"{verb} {tokens} token(s) expired before {when} ({detail}).")
    deleted = tokens - kept
    if dry_run:
        click.echo(
            f"{kept} row(s) would stay as identity links, {deleted} would be deleted."
        )
    else:
        click.echo(f"{kept} row(s) stay as identity links, {deleted} were deleted.")


def _readable(stored: t.Any, cipher: TokenCipher | None) -> dict[str, t.Any] | None:
    """The token in a stored value, decrypted if need be; ``None`` if it can't be
    (quietly: unlike the storage, a count has no user to send back to login)."""
    if not is_encrypted(stored):
        return stored if isinstance(stored, dict) else None
    if cipher is None:
        return None
    try:
        return cipher.decrypt(stored)
    except ValueError:
        return None


@contextmanager
def _database_errors() -> t.Iterator[None]:
    import sqlalchemy as sa

    try:
        yield
    except sa.exc.SQLAlchemyError as e:
        # The first line only: SQLAlchemy's message may quote parameters.
        cause = getattr(e, "orig", None) or e
        first = (str(cause).strip().splitlines() or [""])[0][:200]
        raise click.ClickException(
            f"The database failed: {type(cause).__name__}: {first}"
        ) from None


def _format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        size = _DURATION_UNITS[unit]
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@oauth_cli.command("reencrypt")
@click.option(
    "--batch-size",
    default=200,
    show_default=True,
    type=click.IntRange(1),
    help="Tokens re-encrypted per database transaction.",
)
def reencrypt_command(batch_size: int) -> None:
    """Re-encrypt the stored tokens under the newest key of
    OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS, and encrypt those stored in plain text. Run
    it after putting a new key first, before removing the old one. Safe while the
    app runs, and safe to repeat; never prints a token.

    \f
    .. versionadded:: 0.1
    """
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    state = _state(app)
    if state.cipher is None:
        raise click.ClickException(
            "OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS is not set: there is no key to "
            "encrypt with."
        )
    reencrypt = getattr(state.storage, "reencrypt", None)
    if not callable(reencrypt):
        name = type(state.storage).__name__
        if name == "SessionStorage":
            click.echo(
                _wrap(
                    "SessionStorage keeps tokens in each browser's session cookie, "
                    "out of reach: each is encrypted under the newest key when it "
                    "is next written (a refresh, a login). Tokens under a removed "
                    "key are dropped, and their users log in again.",
                    "",
                )
            )
        else:
            click.echo(f"{name} keeps no tokens at rest: nothing to re-encrypt.")
        return
    from .errors import StorageError

    try:
        counts: dict[str, int] = reencrypt(state.cipher, batch_size=batch_size)
    except StorageError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"re-encrypted under the newest key: {counts['rotated']}")
    click.echo(f"encrypted (were plain text):      {counts['encrypted']}")
    click.echo(f"under the newest key already:     {counts['current']}")
    click.echo(f"unreadable (no key decrypts):     {counts['unreadable']}")
    if counts["unreadable"]:
        raise click.ClickException(
            f"{counts['unreadable']} token(s) can't be decrypted with any configured "
            "key: put back the key they were encrypted with, or let their users log "
            "in again (the tokens are left as they are)."
        )
