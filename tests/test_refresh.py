"""Refresh as real providers make it happen: short-lived access tokens, refresh
tokens that do not rotate, and two requests of one browser refreshing at once.

These run against the development provider over loopback HTTP, with the settings a
user would pick (tokens of a few seconds), which tests with one-hour tokens never
reach."""

from __future__ import annotations

import threading
import time
import typing as t

import pytest
import requests
from flask import Flask
from flask import jsonify
from flask_login import current_user
from flask_login import login_required
from flask_login import LoginManager
from flask_login import UserMixin
from werkzeug.serving import make_server

from flask_oauthclient import MemoryStorage
from flask_oauthclient import OAuth
from flask_oauthclient import SessionStorage
from flask_oauthclient.storage import BaseStorage
from flask_oauthclient.testing import DevProvider
from flask_oauthclient.testing.pytest_plugin import dev_login


class Account(UserMixin):
    def __init__(self, id: str) -> None:
        self.id = id


@pytest.fixture(scope="module")
def short() -> t.Iterator[DevProvider]:
    """A provider of one-second access tokens, as a user would configure one to
    see refresh happen, with rotation and reuse detection (oidc-provider's)."""
    provider = DevProvider(access_token_ttl=1, revoke_grant_on_reuse=True)
    with provider.serve():
        yield provider


@pytest.fixture(autouse=True)
def reset(short: DevProvider) -> t.Iterator[None]:
    short.reset_stats()
    yield
    short.access_token_ttl = 1
    short.rotate_refresh_tokens = True
    short.token_delay = 0.0


def make_app(dev: DevProvider, storage: BaseStorage | None = None) -> Flask:
    accounts: dict[str, Account] = {}
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
    def on_login(provider: t.Any, token: t.Any, userinfo: t.Any) -> Account:
        return accounts.setdefault(userinfo["sub"], Account(userinfo["sub"]))

    app = Flask(__name__)
    app.config.update(
        TESTING=True, SECRET_KEY="test", OAUTHCLIENT_INSECURE_TRANSPORT=True
    )
    LoginManager(app).user_loader(accounts.get)
    oauth.init_app(
        app, storage=storage or MemoryStorage(user=lambda: current_user.get_id())
    )

    @app.get("/api")
    @login_required
    def api() -> t.Any:
        r = oauth.dev.get("api/whoami")
        return jsonify(status=r.status_code, token=oauth.dev.token["access_token"])

    return app


@pytest.mark.parametrize("ttl", [1, 2, 5])
def test_short_lived_tokens_log_in_and_refresh_when_they_expire(
    short: DevProvider, ttl: int
) -> None:
    short.access_token_ttl = ttl
    client = make_app(short).test_client()
    r = dev_login(client, short, "dev", "alice", next="/api")
    assert r.status_code == 302 and r.headers["Location"] == "/api"
    assert short.stats.snapshot().get("token_refresh_token", 0) == 0
    first = client.get("/api")
    assert first.status_code == 200 and first.json["status"] == 200
    if ttl >= 5:
        # The leeway is at most half the lifetime: a fresh 5 s token is used as is.
        assert short.stats.snapshot().get("token_refresh_token", 0) == 0
    time.sleep(ttl + 0.1)
    r = client.get("/api")
    assert r.status_code == 200 and r.json["status"] == 200
    assert r.json["token"] != first.json["token"]
    assert short.stats.snapshot().get("token_refresh_token", 0) >= 1
    assert short.stats.snapshot().get("invalid_grant", 0) == 0


def test_refresh_tokens_that_do_not_rotate_refresh_at_every_expiry(
    short: DevProvider,
) -> None:
    short.rotate_refresh_tokens = False
    client = make_app(short).test_client()
    dev_login(client, short, "dev", "alice")
    seen = set()
    for expected in (1, 2, 3):
        time.sleep(1.1)
        r = client.get("/api")
        assert r.status_code == 200 and r.json["status"] == 200
        seen.add(r.json["token"])
        assert short.stats.snapshot().get("token_refresh_token", 0) == expected
    assert len(seen) == 3


def test_two_requests_of_one_browser_refresh_a_session_token_once(
    short: DevProvider,
) -> None:
    """Tokens in the session cookie: each request carries its own copy, so only the
    in-process refresh lock (and its cache) keeps the second from presenting the
    rotated refresh token, which the provider answers by revoking the grant."""
    short.access_token_ttl = 1
    short.token_delay = 0.3
    app = make_app(short, SessionStorage())
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        browser = requests.Session()
        start = browser.get(f"{base}/login/dev", allow_redirects=False, timeout=10)
        short.auto_login = "alice"
        try:
            back = requests.get(
                start.headers["Location"], allow_redirects=False, timeout=10
            )
        finally:
            short.auto_login = None
        done = browser.get(back.headers["Location"], allow_redirects=False, timeout=10)
        assert done.status_code == 302
        time.sleep(1.1)
        results: list[int] = []

        def call() -> None:
            r = requests.get(
                f"{base}/api",
                cookies=browser.cookies,
                allow_redirects=False,
                timeout=10,
            )
            results.append(
                r.json()["status"] if r.status_code == 200 else r.status_code
            )

        threads = [threading.Thread(target=call) for _ in range(2)]
        for t_ in threads:
            t_.start()
        for t_ in threads:
            t_.join()
        assert results == [200, 200]
        assert short.stats.snapshot().get("token_refresh_token", 0) == 1
        assert short.stats.snapshot().get("invalid_grant", 0) == 0
    finally:
        server.shutdown()
        thread.join()
