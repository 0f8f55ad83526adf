"""``flask oauth providers``: the registered providers and their exact callback
URLs."""

from __future__ import annotations

import time
import typing as t
import uuid
from contextlib import contextmanager
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from click.testing import Result
from flask import Flask

from flask_oauthclient import OAuth
from flask_oauthclient.cli import parse_cutoff
from flask_oauthclient.cli import parse_duration
from flask_oauthclient.providers import get_preset
from flask_oauthclient.providers import preset_names
from flask_oauthclient.storage import Identity

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


# -- flask oauth tokens / purge ------------------------------------------------------


@pytest.fixture
def token_env(database_url: str) -> t.Iterator[t.Any]:
    """An app with SQLAlchemyStorage, providers "dev" and "corp", and four users."""
    with make_token_env(database_url) as env:
        yield env


@contextmanager
def make_token_env(database_url: str, **config: t.Any) -> t.Iterator[t.Any]:
    from test_sqla import created
    from test_sqla import make_env

    with created(make_env(database_url, uuid.uuid4().hex[:12])) as env:
        env.app.config.update(config)
        oauth = OAuth()
        for name in ("dev", "corp"):
            oauth.register(
                name,
                client_id="id",
                client_secret=SECRET,
                authorize_url="https://idp.example/authorize",
                token_url="https://idp.example/token",
            )
        oauth.init_app(env.app, storage=env.storage)
        env.users = [env.User(name=f"user{i}") for i in range(4)]
        env.db.session.add_all(env.users)
        env.db.session.commit()
        yield env


def store(
    env: t.Any,
    provider: str,
    user: int,
    *,
    expires_in: float | None,
    refresh: bool = True,
    identity: bool = True,
) -> None:
    token: dict[str, t.Any] = {
        "access_token": f"{SECRET}-access-{provider}-{user}",
        "token_type": "Bearer",
    }
    if refresh:
        token["refresh_token"] = f"{SECRET}-refresh-{provider}-{user}"
    if expires_in is not None:
        token["expires_at"] = time.time() + expires_in
    env.storage.set(
        provider,
        token,
        user=env.users[user],
        identity=Identity("https://idp.example", f"sub-{user}") if identity else None,
    )


def cli(env: t.Any, *args: str, exit_code: int = 0) -> str:
    result = env.app.test_cli_runner().invoke(args=["oauth", *args])
    assert result.exit_code == exit_code, result.output
    assert SECRET not in result.output
    return result.output


def table(output: str) -> dict[str, list[str]]:
    """The rows of `flask oauth tokens`, by provider."""
    lines = output.splitlines()
    assert lines[0].split() == [
        "provider",
        "tokens",
        "expired",
        "expiring",
        "no",
        "expiry",
        "no",
        "refresh",
        "links",
        "only",
    ]
    rows = {}
    for line in lines[1:]:
        if not line.strip():
            break
        name, *numbers = line.split()
        rows[name] = numbers
    return rows


DAY = 86400


def test_tokens_counts_per_provider(token_env: t.Any) -> None:
    env = token_env
    store(env, "dev", 0, expires_in=-DAY)  # expired
    store(env, "dev", 1, expires_in=600, refresh=False)  # expiring within 1h
    store(env, "dev", 2, expires_in=None)  # no expiry
    store(env, "dev", 3, expires_in=-60)
    env.storage.delete("dev", user=env.users[3])  # a link only
    store(env, "corp", 0, expires_in=2 * DAY)
    rows = table(cli(env, "tokens"))
    #                tokens expired expiring no-expiry no-refresh links
    assert rows == {
        "dev": ["3", "1", "1", "1", "1", "1"],
        "corp": ["1", "0", "0", "0", "0", "0"],
        "total": ["4", "1", "1", "1", "1", "1"],
    }
    rows = table(cli(env, "tokens", "--expiring-within", "3d", "--provider", "corp"))
    assert rows == {"corp": ["1", "0", "1", "0", "0", "0"]}


def test_tokens_on_an_empty_table_and_unregistered_providers(token_env: t.Any) -> None:
    env = token_env
    output = cli(env, "tokens")
    assert table(output) == {
        "dev": ["0"] * 6,
        "corp": ["0"] * 6,
        "total": ["0"] * 6,
    }
    assert "within 1h" in output
    store(env, "retired", 0, expires_in=60)
    output = cli(env, "tokens", "--provider", "retired")
    assert "retired" in table(output)
    assert "(not registered)" in output


def test_tokens_refuses_a_bad_window(token_env: t.Any) -> None:
    output = cli(token_env, "tokens", "--expiring-within", "soon", exit_code=2)
    assert "is not a duration" in output


def test_purge_keeps_identity_links(token_env: t.Any) -> None:
    env = token_env
    store(env, "dev", 0, expires_in=-40 * DAY)
    store(env, "dev", 1, expires_in=-40 * DAY, identity=False)
    store(env, "dev", 2, expires_in=-DAY)  # expired, but not 30 days ago
    store(env, "dev", 3, expires_in=None)  # never expires: kept
    store(env, "corp", 0, expires_in=-40 * DAY)

    output = cli(env, "purge", "--expired-before", "30d", "--dry-run")
    assert "Would purge 3 token(s) expired before " in output
    assert "(corp: 1, dev: 2)" in output
    assert "2 row(s) would stay as identity links, 1 would be deleted." in output
    assert len(rows_of(env)) == 5

    output = cli(env, "purge", "--expired-before", "30d")
    assert "Purged 3 token(s)" in output
    assert "2 row(s) stay as identity links, 1 were deleted." in output
    left = {(r["provider"], r["subject"]): r for r in rows_of(env)}
    assert set(left) == {
        ("dev", "sub-0"),
        ("dev", "sub-2"),
        ("dev", "sub-3"),
        ("corp", "sub-0"),
    }
    assert left[("dev", "sub-0")]["token"] is None
    assert left[("corp", "sub-0")]["token"] is None
    assert left[("dev", "sub-2")]["token"] is not None
    assert left[("dev", "sub-3")]["token"] is not None
    # A returning user is still recognized by the identity link.
    with env.app.app_context():
        found = env.storage.find_user("dev", Identity("https://idp.example", "sub-0"))
        assert found is not None and found.id == env.users[0].id

    assert "No token expired before" in cli(env, "purge", "--expired-before", "30d")


def test_purge_unlink_and_provider(token_env: t.Any) -> None:
    env = token_env
    store(env, "dev", 0, expires_in=-40 * DAY)
    store(env, "corp", 0, expires_in=-40 * DAY)
    output = cli(env, "purge", "--expired-before", "2000-01-01", "--provider", "dev")
    assert "No token expired before 2000-01-01T00:00:00+00:00." in output
    output = cli(
        env, "purge", "--expired-before", "1w", "--provider", "dev", "--unlink"
    )
    assert "Purged 1 token(s)" in output
    assert "0 row(s) stay as identity links, 1 were deleted." in output
    assert [r["provider"] for r in rows_of(env)] == ["corp"]


def test_purge_never_touches_live_tokens(token_env: t.Any) -> None:
    env = token_env
    store(env, "dev", 0, expires_in=DAY)
    output = cli(env, "purge", "--expired-before", "2999-01-01T00:00:00Z")
    assert "No token expired before" in output
    assert rows_of(env)[0]["token"] is not None


def test_purge_refuses_a_bad_date(token_env: t.Any) -> None:
    output = cli(token_env, "purge", "--expired-before", "yesterday", exit_code=2)
    assert "neither an ISO date or time" in output
    output = cli(token_env, "purge", exit_code=2)
    assert "--expired-before" in output


@pytest.mark.parametrize("command", [["tokens"], ["purge", "--expired-before", "1d"]])
def test_token_commands_need_sqlalchemy_storage(app: Flask, command: list[str]) -> None:
    setup(app, "github")
    result = app.test_cli_runner().invoke(args=["oauth", *command])
    assert result.exit_code == 1
    assert "works with SQLAlchemyStorage only" in result.output
    assert "SessionStorage" in result.output
    assert "session cookie" in result.output


def test_parse_duration_and_cutoff() -> None:
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("1d12h") == timedelta(hours=36)
    assert parse_duration("2W") == timedelta(weeks=2)
    assert parse_duration("90 m") == timedelta(minutes=90)
    for bad in ("", "d", "30", "30x", "1.5d", "-1d", "30d garbage"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    now = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
    assert parse_cutoff("1d", now) == datetime(2026, 2, 28, 12, tzinfo=timezone.utc)
    assert parse_cutoff("2026-01-31", now) == datetime(2026, 1, 31, tzinfo=timezone.utc)
    assert parse_cutoff("2026-01-31T12:00:00+01:00", now) == datetime(
        2026, 1, 31, 11, tzinfo=timezone.utc
    )
    assert parse_cutoff("2026-01-31T12:00Z", now) == datetime(
        2026, 1, 31, 12, tzinfo=timezone.utc
    )
    with pytest.raises(ValueError):
        parse_cutoff("last week", now)


def rows_of(env: t.Any) -> list[t.Any]:
    tokens = env.OAuthToken.__table__
    with env.db.engine.connect() as conn:
        stmt = sa.select(tokens).order_by(tokens.c.id)
        return list(conn.execute(stmt).mappings())


def test_tokens_reads_encrypted_tokens(tmp_path: t.Any) -> None:
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    url = f"sqlite:///{tmp_path / 'encrypted.sqlite'}"
    with make_token_env(url, OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS=[key]) as env:
        with env.app.app_context():
            store(env, "dev", 0, expires_in=600)
            store(env, "dev", 1, expires_in=600, refresh=False)
        stored = rows_of(env)[0]["token"]
        assert list(stored) == ["enc"]  # encrypted at rest
        assert table(cli(env, "tokens", "--provider", "dev")) == {
            "dev": ["2", "0", "2", "0", "1", "0"]
        }
        # Without the key, the refresh token can't be looked for: said, not guessed.
        env.app.extensions["oauthclient"].cipher = None
        output = cli(env, "tokens", "--provider", "dev")
        assert table(output) == {"dev": ["2", "0", "2", "0", "0", "0"]}
        assert "2 token(s) can't be decrypted" in output


def test_private_key_jwt_shows_the_key_not_a_missing_secret(app: Flask) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    oauth = OAuth()
    oauth.register(
        "corp",
        client_id="corp-id",
        authorize_url="https://idp.example/authorize",
        token_url="https://idp.example/token",
        token_endpoint_auth_method="private_key_jwt",
        client_private_key=key.decode(),
        client_key_id="key-1",
    )
    oauth.init_app(app)
    output = run(app).output
    corp = block(output, "corp")
    assert field(corp, "client secret") is None
    assert field(corp, "client auth") == "private_key_jwt, private key set (kid key-1)"
    assert "PRIVATE KEY" not in output


def test_a_form_post_callback_is_shown(app: Flask) -> None:
    """Proxies and firewalls must let the provider's POST reach the callback."""
    oauth = OAuth()
    for name, mode in (("posted", "form_post"), ("plain", None)):
        oauth.register(
            name,
            client_id=f"{name}-id",
            client_secret=SECRET,
            authorize_url="https://idp.example/authorize",
            token_url="https://idp.example/token",
            response_mode=mode,
        )
    oauth.init_app(app)
    output = run(app).output
    assert field(block(output, "posted"), "callback by") == (
        "POST from the provider (response_mode=form_post)"
    )
    assert field(block(output, "plain"), "callback by") is None
