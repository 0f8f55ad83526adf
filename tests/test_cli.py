"""``flask oauth providers``: the registered providers and their exact callback
URLs."""

from __future__ import annotations

import typing as t
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
from click.testing import Result
from flask import Flask

from flask_oauthclient import OAuth
from flask_oauthclient.providers import get_preset
from flask_oauthclient.providers import preset_names

SECRET = "s3cr3t-never-shown"
TENANT_URLS = {
    "auth0": "https://example.eu.auth0.com/.well-known/openid-configuration",
    "keycloak": "https://sso.example/realms/acme/.well-known/openid-configuration",
    "okta": "https://example.okta.com/oauth2/default/.well-known/openid-configuration",
}


@pytest.fixture(autouse=True)
def _restore_oauthlib_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # init_app sets OAUTHLIB_INSECURE_TRANSPORT for apps that allow http: undo it.
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)


def setup(app: Flask, *names: str, **config: t.Any) -> OAuth:
    app.config.update(config)
    oauth = OAuth()
    for name in names:
        extra = (
            {"server_metadata_url": TENANT_URLS[name]} if name in TENANT_URLS else {}
        )
        oauth.register(name, client_id=f"{name}-id", client_secret=SECRET, **extra)
    oauth.init_app(app)
    return oauth


def run(app: Flask, *args: str) -> Result:
    result = app.test_cli_runner().invoke(args=["oauth", "providers", *args])
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    return result


def block(output: str, name: str) -> list[str]:
    """The lines about one provider."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{name} ("))
    end = lines.index("", start)
    return lines[start:end]


def field(lines: list[str], label: str) -> str | None:
    for line in lines:
        if line.startswith(f"  {label}:"):
            return line.split(":", 1)[1].strip()
    return None


def test_lists_providers_for_flask_run(app: Flask) -> None:
    setup(app, "google", "github")
    output = run(app).output
    google = block(output, "google")
    assert google[0] == "google (Google, OpenID Connect)"
    assert field(google, "client id") == "set"
    assert field(google, "client secret") == "set"
    assert field(google, "login URL") == "http://127.0.0.1:5000/login/google"
    assert (
        field(google, "callback URL") == "http://127.0.0.1:5000/login/google/authorized"
    )
    assert (
        field(google, "console") == "https://console.cloud.google.com/apis/credentials"
    )
    github = block(output, "github")
    assert github[0] == "github (GitHub, OAuth 2)"
    assert (
        field(github, "callback URL") == "http://127.0.0.1:5000/login/github/authorized"
    )
    # Without SERVER_NAME the URLs are those of `flask run`, and the user is told.
    assert "SERVER_NAME is not set" in output
    assert "--base-url" in output
    assert "OAUTHCLIENT_INSECURE_TRANSPORT" in output


def test_insecure_transport_hint_only_when_needed(app: Flask) -> None:
    setup(app, "github", OAUTHCLIENT_INSECURE_TRANSPORT=True)
    output = run(app).output
    assert "SERVER_NAME is not set" in output
    assert "OAUTHCLIENT_INSECURE_TRANSPORT" not in output


def test_server_name_and_scheme(app: Flask) -> None:
    setup(
        app,
        "google",
        SERVER_NAME="app.example.com",
        PREFERRED_URL_SCHEME="https",
        OAUTHCLIENT_URL_PREFIX="/auth",
    )
    output = run(app).output
    google = block(output, "google")
    assert field(google, "login URL") == "https://app.example.com/auth/google"
    assert (
        field(google, "callback URL")
        == "https://app.example.com/auth/google/authorized"
    )
    assert "Hint" not in output


def test_application_root(app: Flask) -> None:
    setup(
        app,
        "github",
        SERVER_NAME="example.org:8443",
        PREFERRED_URL_SCHEME="https",
        APPLICATION_ROOT="/shop",
    )
    github = block(run(app).output, "github")
    assert (
        field(github, "callback URL")
        == "https://example.org:8443/shop/login/github/authorized"
    )


def test_base_url_option(app: Flask) -> None:
    setup(app, "github")
    output = run(app, "--base-url", "https://site.example/sub/").output
    github = block(output, "github")
    assert field(github, "login URL") == "https://site.example/sub/login/github"
    assert (
        field(github, "callback URL")
        == "https://site.example/sub/login/github/authorized"
    )
    assert "Hint" not in output


def test_callback_url_is_the_redirect_uri_the_login_sends(app: Flask) -> None:
    setup(app, "github", "discord")
    output = run(app, "--base-url", "https://site.example").output
    client = app.test_client()
    for name in ("github", "discord"):
        response = client.get(f"/login/{name}", base_url="https://site.example")
        assert response.status_code == 302
        query = parse_qs(urlsplit(response.headers["Location"]).query)
        assert query["redirect_uri"] == [field(block(output, name), "callback URL")]


def test_missing_secret_and_config_credentials(app: Flask) -> None:
    app.config["OAUTHCLIENT_CORP_CLIENT_ID"] = "corp-id"
    oauth = OAuth()
    oauth.register(
        "corp",
        authorize_url="https://idp.example/authorize",
        token_url="https://idp.example/token",
        scope=["openid", "email"],
    )
    oauth.init_app(app)
    corp = block(run(app).output, "corp")
    assert corp[0] == "corp (Corp, OpenID Connect)"
    assert field(corp, "client id") == "set"
    assert "corp-id" not in "\n".join(corp)
    secret = field(corp, "client secret")
    assert secret is not None
    assert secret.startswith("missing")
    assert "OAUTHCLIENT_CORP_CLIENT_SECRET" in secret
    # No preset, so no console URL or notes.
    assert field(corp, "console") is None
    assert field(corp, "notes") is None


def test_every_preset_is_listed(app: Flask) -> None:
    names = preset_names()
    setup(app, *names)
    output = run(app).output
    for name in names:
        lines = block(output, name)
        preset = get_preset(name)
        assert preset is not None
        assert lines[0].startswith(f"{name} ({preset.title}, ")
        assert field(lines, "callback URL") == (
            f"http://127.0.0.1:5000/login/{name}/authorized"
        )
        assert field(lines, "console") == preset.console_url


def test_no_providers(app: Flask) -> None:
    OAuth().init_app(app)
    output = run(app).output
    assert "No providers are registered" in output


def test_help(app: Flask) -> None:
    setup(app)
    result = app.test_cli_runner().invoke(args=["oauth", "providers", "--help"])
    assert result.exit_code == 0
    assert "callback URL" in result.output
    assert "versionadded" not in result.output
