"""The whole login flow against the development provider over loopback HTTP."""

from __future__ import annotations

import typing as t
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from flask import jsonify
from flask import Response
from flask import session
from flask.testing import FlaskClient
from flask_login import current_user
from flask_login import login_required
from flask_login import LoginManager
from flask_login import UserMixin

from flask_oauthclient import OAuth
from flask_oauthclient.signals import oauth_authorized
from flask_oauthclient.storage import MemoryStorage
from flask_oauthclient.testing import DevProvider


class User(UserMixin):
    def __init__(self, sub: str, name: str) -> None:
        self.id = sub
        self.name = name


@pytest.fixture
def users() -> dict[str, User]:
    return {}


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage(user=lambda: current_user.get_id())


@pytest.fixture
def oauth(dev: DevProvider, users: dict[str, User]) -> OAuth:
    oauth = OAuth()
    oauth.register(
        "dev",
        client_id="dev-client",
        client_secret="dev-secret",
        server_metadata_url=dev.metadata_url,
        scope=["openid", "email", "profile", "offline_access"],
        api_base_url=dev.issuer + "/",
    )

    @oauth.on_login
    def on_login(provider: t.Any, token: t.Any, userinfo: dict[str, t.Any]) -> t.Any:
        if userinfo["sub"] == "mallory":
            return None
        if userinfo["sub"] == "redirect-me":
            return Response("custom", status=418)
        user = users.setdefault(
            userinfo["sub"], User(userinfo["sub"], userinfo["name"])
        )
        return user

    return oauth


@pytest.fixture
def app(oauth: OAuth, storage: MemoryStorage, users: dict[str, User]) -> Flask:
    app = Flask(__name__)
    app.config.update(TESTING=True, SECRET_KEY="k", OAUTHCLIENT_INSECURE_TRANSPORT=True)
    login_manager = LoginManager(app)
    login_manager.user_loader(users.get)
    oauth.init_app(app, storage=storage)

    @app.get("/profile")
    @login_required
    def profile() -> t.Any:
        return jsonify(oauth.dev.get("userinfo").json())

    @app.get("/plant")
    def plant() -> str:
        session["planted"] = "by an attacker"
        return "ok"

    return app


def log_in(
    client: FlaskClient, dev: DevProvider, user: str, next: str = "/profile"
) -> t.Any:
    r = client.get("/login/dev", query_string={"next": next})
    assert r.status_code == 302
    dev.auto_login = user
    try:
        authorize = requests.get(
            r.headers["Location"], allow_redirects=False, timeout=5
        )
    finally:
        dev.auto_login = None
    assert authorize.status_code in (302, 303), authorize.text
    back = urlsplit(authorize.headers["Location"])
    return client.get(f"{back.path}?{back.query}")


def test_full_login_then_api_call(
    client: FlaskClient, dev: DevProvider, storage: MemoryStorage
) -> None:
    seen: list[dict[str, t.Any]] = []
    with oauth_authorized.connected_to(lambda s, **kw: seen.append(kw["userinfo"])):
        r = log_in(client, dev, "alice")
    assert (r.status_code, r.headers["Location"]) == (302, "/profile")
    claims = seen[0]
    assert claims["sub"] == "alice"
    assert claims["iss"] == dev.issuer
    assert claims["email"] == "alice@example.test" and claims["email_verified"] is True
    token = storage.get("dev", user="alice")
    assert token is not None and token["refresh_token"]
    profile = client.get("/profile")
    assert profile.status_code == 200
    assert profile.json is not None and profile.json["name"] == "Alice"


def test_refused_login_logs_nobody_in(
    client: FlaskClient, dev: DevProvider, storage: MemoryStorage
) -> None:
    r = log_in(client, dev, "mallory")
    assert r.status_code == 403
    assert storage.get("dev", user="mallory") is None
    assert client.get("/profile").status_code == 401


def test_handler_response_is_sent_as_is(client: FlaskClient, dev: DevProvider) -> None:
    r = log_in(client, dev, "redirect-me")
    assert (r.status_code, r.data) == (418, b"custom")


def test_session_is_reset_at_login(client: FlaskClient, dev: DevProvider) -> None:
    client.get("/plant")
    log_in(client, dev, "bob")
    with client.session_transaction() as sess:
        assert "planted" not in sess
        assert sess["_user_id"] == "bob"


def test_expired_token_is_refreshed_through_the_provider(
    client: FlaskClient, dev: DevProvider, storage: MemoryStorage
) -> None:
    log_in(client, dev, "carol")
    before = storage.get("dev", user="carol")
    assert before is not None
    dev.expire_access_tokens()
    before["expires_at"] = 0
    storage.set("dev", before, user="carol")
    refreshes = dev.stats["token_refresh_token"]
    r = client.get("/profile")
    assert r.status_code == 200
    after = storage.get("dev", user="carol")
    assert after is not None
    assert after["refresh_token"] != before["refresh_token"]
    assert dev.stats["token_refresh_token"] == refreshes + 1
    # The provider rotated the refresh token: the old one is refused now.
    old = requests.post(
        dev.issuer + "/token",
        data={"grant_type": "refresh_token", "refresh_token": before["refresh_token"]},
        auth=("dev-client", "dev-secret"),
        timeout=5,
    )
    assert old.status_code == 400 and old.json()["error"] == "invalid_grant"


def test_without_flask_login_or_handler_the_token_stays_in_the_session(
    dev: DevProvider,
) -> None:
    oauth = OAuth()
    oauth.register(
        "dev",
        client_id="dev-client",
        client_secret="dev-secret",
        server_metadata_url=dev.metadata_url,
        scope=["openid", "profile"],
        api_base_url=dev.issuer + "/",
    )
    app = Flask(__name__)
    app.config.update(TESTING=True, SECRET_KEY="k", OAUTHCLIENT_INSECURE_TRANSPORT=True)
    oauth.init_app(app)

    @app.get("/")
    def index() -> t.Any:
        if not oauth.dev.authorized:
            return "anonymous"
        return jsonify(oauth.dev.get("userinfo").json())

    client = app.test_client()
    assert client.get("/").data == b"anonymous"
    r = log_in(client, dev, "dave", next="/")
    assert r.headers["Location"] == "/"
    claims = client.get("/").json
    assert claims is not None
    assert (claims["sub"], claims["name"]) == ("dave", "Dave")


def test_userinfo_calls_the_discovered_endpoint(
    app: Flask, client: FlaskClient, dev: DevProvider, oauth: OAuth
) -> None:
    log_in(client, dev, "kim")
    calls = dev.stats["userinfo"]
    with client.session_transaction() as sess:
        user_id = sess["_user_id"]
    with app.test_request_context():
        from flask_login import login_user

        login_user(app.login_manager._user_callback(user_id))  # type: ignore[attr-defined]
        claims = oauth.dev.userinfo()
    assert claims["sub"] == "kim"
    assert dev.stats["userinfo"] == calls + 1
