"""No secret in any log line: a whole login, API call, refresh and logout against
the development provider over loopback, with every logger of the process at DEBUG
(requests-oauthlib logs token responses, request headers and bodies there), and the
redaction filter itself under arbitrary secrets."""

from __future__ import annotations

import base64
import io
import json
import logging
import typing as t
from contextlib import contextmanager
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from flask import jsonify
from flask import render_template_string
from flask.testing import FlaskClient
from flask_login import current_user
from flask_login import login_required
from flask_login import LoginManager
from flask_login import UserMixin
from helpers.fakes import response
from helpers.hardening import callback
from helpers.hardening import complete
from helpers.hardening import make_site
from helpers.hardening import start_login
from hypothesis import assume
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from flask_oauthclient import OAuth
from flask_oauthclient import redaction
from flask_oauthclient.storage import MemoryStorage
from flask_oauthclient.testing import DevProvider

CLIENT_SECRET = "dev-secret"


class User(UserMixin):
    def __init__(self, sub: str) -> None:
        self.id = sub


@contextmanager
def everything_at_debug() -> t.Iterator[io.StringIO]:
    """Every logger of the process at DEBUG, all of it written to one buffer by a
    handler on the root logger (tracebacks included)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    loggers = [root] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    levels = [(logger, logger.level, logger.disabled) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
    root.addHandler(handler)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        for logger, level, disabled in levels:
            logger.setLevel(level)
            logger.disabled = disabled


def make_app(dev: DevProvider, storage: MemoryStorage) -> Flask:
    users: dict[str, User] = {}
    oauth = OAuth()
    oauth.register(
        "dev",
        client_id="dev-client",
        client_secret=CLIENT_SECRET,
        server_metadata_url=dev.metadata_url,
        scope=["openid", "email", "profile", "offline_access"],
        api_base_url=dev.issuer + "/",
    )
    oauth.on_login(
        lambda p, tok, info: users.setdefault(info["sub"], User(info["sub"]))
    )
    app = Flask("logging_app")
    app.config.update(TESTING=True, SECRET_KEY="k", OAUTHCLIENT_INSECURE_TRANSPORT=True)
    LoginManager(app).user_loader(users.get)
    oauth.init_app(app, storage=storage)

    @app.get("/")
    def index() -> str:
        return render_template_string("{{ oauthclient_csrf_token() }}")

    @app.get("/profile")
    @login_required
    def profile() -> t.Any:
        return jsonify(oauth.dev.get("userinfo").json())

    return app


def full_session(
    client: FlaskClient, dev: DevProvider, storage: MemoryStorage
) -> set[str]:
    """Log in, call the API, refresh, call again, log out; return every secret
    that went over the wire."""
    secrets = {CLIENT_SECRET}
    r = client.get("/login/dev", query_string={"next": "/profile"})
    state = parse_qs(urlsplit(r.headers["Location"]).query)["state"][0]
    with client.session_transaction() as session:
        secrets.add(session["_oauthclient_pending"][state]["v"])  # PKCE verifier
    dev.auto_login = "alice"
    try:
        authorize = requests.get(
            r.headers["Location"], allow_redirects=False, timeout=5
        )
    finally:
        dev.auto_login = None
    back = urlsplit(authorize.headers["Location"])
    secrets.add(parse_qs(back.query)["code"][0])
    assert client.get(f"{back.path}?{back.query}").status_code == 302
    first = storage.get("dev", user="alice")
    assert first is not None
    assert client.get("/profile").status_code == 200
    # Expire the access token: the next call refreshes it.
    dev.expire_access_tokens()
    storage.set("dev", {**first, "expires_at": 0}, user="alice")
    assert client.get("/profile").status_code == 200
    second = storage.get("dev", user="alice")
    assert second is not None
    assert second["refresh_token"] != first["refresh_token"]
    csrf = client.get("/").get_data(as_text=True)
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 302
    for token in (first, second):
        for key in ("access_token", "refresh_token", "id_token"):
            secrets.add(token[key])
    basic = base64.b64encode(f"dev-client:{CLIENT_SECRET}".encode()).decode()
    secrets.add(basic)
    return secrets


def test_no_secret_in_any_log_line(dev: DevProvider) -> None:
    storage = MemoryStorage(user=lambda: current_user.get_id())
    app = make_app(dev, storage)
    with everything_at_debug() as output:
        secrets = full_session(app.test_client(), dev, storage)
    text = output.getvalue()
    # The flow ran and was logged, in detail.
    assert "requests_oauthlib" in text
    assert "Obtained token" in text and redaction.MASK in text
    assert len(secrets) >= 9
    for secret in secrets:
        assert secret not in text, f"a secret leaked: {secret[:6]}..."


def test_without_the_filter_requests_oauthlib_does_leak(dev: DevProvider) -> None:
    """The control: the filter is what keeps the secrets out."""
    storage = MemoryStorage(user=lambda: current_user.get_id())
    app = make_app(dev, storage)
    filtered = [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and redaction._FILTER in logger.filters
    ]
    for logger in filtered:
        logger.removeFilter(redaction._FILTER)
    try:
        with everything_at_debug() as output:
            secrets = full_session(app.test_client(), dev, storage)
    finally:
        redaction.install()
    leaked = [secret for secret in secrets if secret in output.getvalue()]
    assert len(leaked) >= 3


def test_filter_is_installed_once_per_logger(app: Flask) -> None:
    late = logging.getLogger("requests_oauthlib.created_later")
    for _ in range(3):
        OAuth().init_app(Flask("again"))
    for name in ("flask_oauthclient", "requests_oauthlib", "oauthlib"):
        assert logging.getLogger(name).filters.count(redaction._FILTER) == 1
    assert late.filters.count(redaction._FILTER) == 1
    session_logger = logging.getLogger("requests_oauthlib.oauth2_session")
    assert session_logger.filters.count(redaction._FILTER) == 1


def test_exceptions_logged_with_a_traceback_are_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("flask_oauthclient")
    secret = "AT-in-a-database-error-3141592"
    with caplog.at_level(logging.ERROR, logger="flask_oauthclient"):
        try:
            raise RuntimeError(
                f'(IntegrityError) [parameters: (\'{{"access_token": "{secret}"}}\',)]'
            )
        except RuntimeError:
            log.exception("Saving the %s token failed.", "corp")
    assert "Saving the corp token failed." in caplog.text
    assert "IntegrityError" in caplog.text
    assert secret not in caplog.text


def test_a_record_whose_arguments_do_not_fit_is_still_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="requests_oauthlib.oauth2_session"):
        logging.getLogger("requests_oauthlib.oauth2_session").debug(
            "%d tokens", {"access_token": "AT-does-not-fit-2718"}
        )
    assert "AT-does-not-fit-2718" not in caplog.text


# -- the redaction, under arbitrary secrets -------------------------------------------

_SECRET = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/",
    min_size=8,
    max_size=60,
)
_FORMS: list[t.Callable[[str, str], str]] = [
    lambda key, s: f"Obtained token {{'token_type': 'Bearer', '{key}': '{s}'}}.",
    lambda key, s: f'content {{"expires_in": 3600, "{key}": "{s}", "scope": "x"}}',
    lambda key, s: f'content {{"{key}" : "{s}"}}',
    lambda key, s: f"Request body was grant_type=x&{key}={s}&redirect_uri=y",
    lambda key, s: f"Request url was https://idp.example/cb?{key}={s}",
    lambda key, s: f"Supplying headers {{'Authorization': 'Bearer {s}'}} and data",
    lambda key, s: f"Authorization: Basic {s}",
    lambda key, s: f"b'{key}={s}&token_type_hint=refresh_token'",
]
_KEYS = st.sampled_from(
    [
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "code",
        "code_verifier",
        "token",
        "password",
    ]
)


@settings(max_examples=300, deadline=None)
@given(secret=_SECRET, key=_KEYS, form=st.sampled_from(_FORMS))
def test_redact_hides_secrets_in_every_shape(
    secret: str, key: str, form: t.Callable[[str, str], str]
) -> None:
    text = form(key, secret)
    # A secret that is also a piece of the message's own words ("token_ty") can't
    # be told apart from them.
    assume(secret not in form(key, ""))
    redacted = redaction.redact(text)
    assert secret not in redacted
    assert redaction.redact(redacted) == redacted


@settings(max_examples=100, deadline=None)
@given(
    header=st.fixed_dictionaries({"alg": st.sampled_from(["RS256", "ES256", "none"])}),
    claims=st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=4),
)
def test_redact_hides_any_jwt(
    header: dict[str, t.Any], claims: dict[str, t.Any]
) -> None:
    def part(value: t.Any) -> str:
        return (
            base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
        )

    token = f"{part(header)}.{part(claims)}.c2lnbmF0dXJl"
    assert token not in redaction.redact(f"logged {token} somewhere")


def test_redact_keeps_what_is_not_secret() -> None:
    text = (
        "Request to fetch token completed with status 200. "
        "{'token_type': 'Bearer', 'expires_in': 3600, 'scope': ['openid']} "
        "response_type=code&client_id=c&code_challenge=abc&state=xyz"
    )
    assert redaction.redact(text) == text


@pytest.mark.parametrize("source", ["query string", "provider"])
def test_attacker_text_cannot_forge_log_lines(
    source: str, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "x\r\n2026-01-01 CRITICAL root admin logged in"
    site = make_site()
    client = site.client()
    params = start_login(client)
    with caplog.at_level(logging.DEBUG):
        if source == "query string":
            r = callback(client, state=params["state"], error=forged)
        else:
            site.idp.token_handler = lambda request: response(401, {"error": forged})
            r = complete(client, site.idp, params)
    assert r.status_code in (403, 502)
    ours = [rec for rec in caplog.records if rec.name.startswith("flask_oauthclient")]
    assert ours
    for record in ours:
        assert "\n" not in record.getMessage() and "\r" not in record.getMessage()


def test_a_short_registered_secret_does_not_break_key_redaction() -> None:
    """A client secret that is also part of a key name ("secret" in
    "client_secret") must not keep the key's value from being redacted."""
    redaction.register_secret("secret")
    text = "Obtained token {'token_type': 'Bearer', 'client_secret': '00000000'}."
    redacted = redaction.redact(text)
    assert "00000000" not in redacted
    assert redaction.redact(redacted) == redacted
