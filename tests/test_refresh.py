"""Refresh: before expiry and once on a 401, saved and signalled, the three
requests-oauthlib styles (automatic, manual, ``TokenUpdated``), refreshed ID tokens,
and the failures (``invalid_grant``, the provider down), against the in-process
FakeIdP; then refresh as real providers make it happen, against the development
provider over loopback HTTP with the settings a user would pick: access tokens of a
few seconds, refresh tokens that do not rotate, two requests of one browser
refreshing at once. Refresh across processes: tests/test_refresh_storm.py."""

from __future__ import annotations

import threading
import time
import typing as t

import pytest
import requests
from flask import Flask
from flask import jsonify
from flask import request
from flask.testing import FlaskClient
from flask_login import current_user
from flask_login import login_required
from flask_login import LoginManager
from flask_login import UserMixin
from helpers.api_app import CountingStorage
from helpers.api_app import give_token
from helpers.api_app import make_app
from helpers.fakes import FakeIdP
from helpers.fakes import response
from werkzeug.serving import make_server

from flask_oauthclient import MemoryStorage
from flask_oauthclient import OAuth
from flask_oauthclient import ProviderError
from flask_oauthclient import ReauthorizationRequired
from flask_oauthclient import SessionStorage
from flask_oauthclient import TokenExpiredError
from flask_oauthclient import TokenUpdated
from flask_oauthclient.signals import token_refreshed
from flask_oauthclient.signals import token_revoked
from flask_oauthclient.storage import BaseStorage
from flask_oauthclient.testing import DevProvider
from flask_oauthclient.testing.pytest_plugin import dev_login


@pytest.fixture
def idp() -> FakeIdP:
    return FakeIdP()


@pytest.fixture
def storage() -> CountingStorage:
    return CountingStorage(user=lambda: request.headers.get("X-User"))


@pytest.fixture
def app(idp: FakeIdP, storage: CountingStorage) -> Flask:
    return make_app(idp, storage)[0]


def test_expired_token_is_refreshed_saved_and_signalled(
    client: FlaskClient, idp: FakeIdP, storage: CountingStorage
) -> None:
    old = give_token(idp, storage, "alice", expires_at=time.time() - 5)
    seen: list[dict[str, t.Any]] = []
    with token_refreshed.connected_to(lambda sender, **kw: seen.append(kw["token"])):
        r = client.get("/me", headers={"X-User": "alice"})
    new = storage.get("corp", user="alice")
    assert new is not None and new["access_token"] != old["access_token"]
    assert new["refresh_token"] != old["refresh_token"]
    assert r.json == {"status": 200, "token": new["access_token"]}
    assert idp.refresh_count == 1
    assert [tok["access_token"] for tok in seen] == [new["access_token"]]


def test_token_expiring_within_the_leeway_is_refreshed(
    client: FlaskClient, idp: FakeIdP, storage: CountingStorage
) -> None:
    give_token(idp, storage, "alice", expires_at=time.time() + 10)
    client.get("/me", headers={"X-User": "alice"})
    assert idp.refresh_count == 1


def test_token_without_expiry_keeps_working(
    client: FlaskClient, idp: FakeIdP, storage: CountingStorage
) -> None:
    token = give_token(idp, storage, "alice", expires_in=None, expires_at=None)
    r = client.get("/me", headers={"X-User": "alice"})
    assert r.json == {"status": 200, "token": token["access_token"]}
    assert idp.refresh_count == 0


def test_refresh_without_new_refresh_token_keeps_the_old_one(
    client: FlaskClient, idp: FakeIdP, storage: CountingStorage
) -> None:
    idp.rotate = False
    old = give_token(idp, storage, "alice", expires_at=time.time() - 5)
    client.get("/me", headers={"X-User": "alice"})
    new = storage.get("corp", user="alice")
    assert new is not None and new["refresh_token"] == old["refresh_token"]
    assert new["access_token"] != old["access_token"]


def test_401_with_a_valid_looking_token_refreshes_once_and_retries(
    client: FlaskClient, idp: FakeIdP, storage: CountingStorage
) -> None:
    old = give_token(idp, storage, "alice")
    calls: list[str] = []

    def api(request: requests.PreparedRequest) -> requests.Response:
        token = (request.headers.get("Authorization") or "")[len("Bearer ") :]
        calls.append(token)
        if token == old["access_token"]:
            return response(401, {"error": "invalid_token"})
        return response(200, {"token": token})

    idp.api_handler = api
    r = client.get("/me", headers={"X-User": "alice"})
    assert r.json is not None and r.json["status"] == 200
    assert idp.refresh_count == 1
    assert len(calls) == 2


def test_a_second_401_is_returned_not_looped(
    client: FlaskClient, idp: FakeIdP, storage: CountingStorage
) -> None:
    give_token(idp, storage, "alice")
    idp.api_handler = lambda request: response(401, {"error": "invalid_token"})
    r = client.get("/me", headers={"X-User": "alice"})
    assert r.json is not None and r.json["status"] == 401
    assert idp.refresh_count == 1


def test_invalid_grant_removes_the_token_and_sends_the_user_to_login(
    client: FlaskClient, idp: FakeIdP, storage: CountingStorage
) -> None:
    give_token(idp, storage, "alice", expires_at=time.time() - 5)
    idp.live_refresh_tokens.clear()
    reasons: list[str] = []
    with token_revoked.connected_to(lambda sender, **kw: reasons.append(kw["reason"])):
        r = client.get("/me", headers={"X-User": "alice"})
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/login/corp?next=")
    assert storage.get("corp", user="alice") is None
    assert reasons == ["invalid_grant"]
    # No loop: the next request has no token and goes to login without a refresh.
    r = client.get("/me", headers={"X-User": "alice", "Accept": "application/json"})
    assert r.status_code == 401
    assert idp.refresh_count == 1


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (requests.ConnectionError("down"), 503),
        (requests.ReadTimeout("slow"), 504),
        (None, 502),
    ],
)
def test_provider_failing_during_refresh_leaves_the_token(
    client: FlaskClient,
    idp: FakeIdP,
    storage: CountingStorage,
    failure: Exception | None,
    status: int,
) -> None:
    old = give_token(idp, storage, "alice", expires_at=time.time() - 5)

    def broken(request: requests.PreparedRequest) -> requests.Response:
        if failure is not None:
            raise failure
        return response(500, raw=b"<html>down</html>", content_type="text/html")

    idp.token_handler = broken
    r = client.get("/me", headers={"X-User": "alice", "Accept": "application/json"})
    assert r.status_code == status
    assert storage.get("corp", user="alice") == old


def test_a_refreshed_token_that_is_already_expired_is_a_provider_error(
    client: FlaskClient, idp: FakeIdP, storage: CountingStorage
) -> None:
    """A provider whose new tokens are expired on arrival (expires_in 0, or a clock
    far off): 502 with the cause, never requests-oauthlib's TokenExpiredError as a
    500, and no refresh loop."""
    give_token(idp, storage, "alice", expires_at=time.time() - 5)

    def expired_on_arrival(request: requests.PreparedRequest) -> requests.Response:
        idp.refresh_count += 1
        body = {**idp.token_response(), "expires_at": time.time() - 60}
        del body["expires_in"]
        return response(200, body)

    idp.token_handler = expired_on_arrival
    r = client.get("/me", headers={"X-User": "alice", "Accept": "application/json"})
    assert r.status_code == 502
    assert r.json is not None and r.json["error"] == "provider_error"
    assert idp.refresh_count == 1


def test_a_refreshed_token_without_expiry_is_used_until_a_401(
    client: FlaskClient, idp: FakeIdP, storage: CountingStorage
) -> None:
    """expires_in is only RECOMMENDED (RFC 6749 §5.1): a refresh answer without it
    replaces the expired token's expiry, which must not linger in the session."""
    give_token(idp, storage, "alice", expires_at=time.time() - 5)

    def without_expiry(request: requests.PreparedRequest) -> requests.Response:
        idp.refresh_count += 1
        body = idp.token_response()
        del body["expires_in"]
        return response(200, body)

    idp.token_handler = without_expiry
    for _ in range(2):
        r = client.get("/me", headers={"X-User": "alice"})
        assert r.status_code == 200 and r.json is not None
        assert r.json["status"] == 200
    assert idp.refresh_count == 1
    stored = storage.get("corp", user="alice")
    assert stored is not None and "expires_at" not in stored


def test_concurrent_refresh_storm_in_threads_refreshes_once(
    app: Flask, idp: FakeIdP, storage: CountingStorage
) -> None:
    give_token(idp, storage, "alice", expires_at=time.time() - 5)
    idp.refresh_delay = 0.05
    results: list[t.Any] = []
    barrier = threading.Barrier(16)

    def call() -> None:
        client = app.test_client()
        barrier.wait()
        results.append(client.get("/me", headers={"X-User": "alice"}).json)

    threads = [threading.Thread(target=call) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = storage.get("corp", user="alice")
    assert idp.refresh_count == 1
    assert stored is not None
    assert [r["status"] for r in results] == [200] * 16
    assert {r["token"] for r in results} == {stored["access_token"]}


def test_manual_refresh_style(idp: FakeIdP, storage: CountingStorage) -> None:
    app, oauth = make_app(idp, storage, auto_refresh=False)
    old = give_token(idp, storage, "alice", expires_at=time.time() - 5)
    with app.test_request_context(headers={"X-User": "alice"}):
        with pytest.raises(TokenExpiredError):
            oauth.corp.get("me")
        new = oauth.corp.refresh_token()
        assert new["access_token"] != old["access_token"]
        assert oauth.corp.get("me").json() == {"token": new["access_token"]}
    assert storage.get("corp", user="alice") == new


def test_refreshed_id_token_for_another_subject_is_refused(
    client: FlaskClient, idp: FakeIdP, storage: CountingStorage
) -> None:
    old = give_token(idp, storage, "alice", expires_at=time.time() - 5)
    idp.id_token_claims = {"sub": "someone-else"}
    r = client.get("/me", headers={"X-User": "alice", "Accept": "application/json"})
    assert r.status_code == 502
    assert storage.get("corp", user="alice") == old


def test_refreshed_id_token_is_verified_and_kept(
    client: FlaskClient, idp: FakeIdP, storage: CountingStorage
) -> None:
    old = give_token(idp, storage, "alice", expires_at=time.time() - 5)
    assert client.get("/me", headers={"X-User": "alice"}).status_code == 200
    new = storage.get("corp", user="alice")
    assert new is not None and new["id_token"] != old["id_token"]


def test_token_updated_style_refreshes_without_saving(
    idp: FakeIdP, storage: CountingStorage
) -> None:
    app, oauth = make_app(idp, storage, token_updater=None)
    old = give_token(idp, storage, "alice", expires_at=time.time() - 5)
    with app.test_request_context(headers={"X-User": "alice"}):
        with pytest.raises(TokenUpdated) as info:
            oauth.corp.get("me")
        new = info.value.token
        assert new["access_token"] != old["access_token"]
        # The caller saves it, as with requests-oauthlib; nothing was stored.
        assert storage.get("corp", user="alice") == old
        oauth.corp.token = new
    assert storage.get("corp", user="alice") == new


def test_token_updater_callable_is_called_after_saving(
    idp: FakeIdP, storage: CountingStorage
) -> None:
    seen: list[t.Any] = []

    def updater(token: dict[str, t.Any]) -> None:
        seen.append((token["access_token"], storage.get("corp", user="alice")))

    app, oauth = make_app(idp, storage, token_updater=updater)
    give_token(idp, storage, "alice", expires_at=time.time() - 5)
    with app.test_request_context(headers={"X-User": "alice"}):
        assert oauth.corp.get("me").status_code == 200
    saved = storage.get("corp", user="alice")
    assert saved is not None
    assert seen == [(saved["access_token"], saved)]


@pytest.mark.parametrize(
    ("error", "description"),
    [
        # The provider refused the app's own request: not "an invalid answer".
        ("invalid_client", ProviderError.refused_description),
        ("unauthorized_client", ProviderError.refused_description),
        # The provider's own trouble: no refusal of the app.
        ("temporarily_unavailable", ProviderError.description),
        ("server_error", ProviderError.description),
    ],
)
def test_other_refresh_errors_are_a_provider_error_and_keep_the_token(
    client: FlaskClient,
    idp: FakeIdP,
    storage: CountingStorage,
    error: str,
    description: str,
) -> None:
    old = give_token(idp, storage, "alice", expires_at=time.time() - 5)
    idp.token_handler = lambda request: response(400, {"error": error})
    r = client.get("/me", headers={"X-User": "alice", "Accept": "application/json"})
    assert r.status_code == 502
    assert r.get_json()["error_description"] == description
    assert storage.get("corp", user="alice") == old


def test_token_updated_style_with_a_revoked_refresh_token(
    idp: FakeIdP, storage: CountingStorage
) -> None:
    app, oauth = make_app(idp, storage, token_updater=None)
    give_token(idp, storage, "alice", expires_at=time.time() - 5)
    idp.live_refresh_tokens.clear()
    with app.test_request_context(headers={"X-User": "alice"}):
        with pytest.raises(ReauthorizationRequired):
            oauth.corp.get("me")


# -- against the development provider, as real providers refresh ---------------


class Account(UserMixin):
    def __init__(self, id: str) -> None:
        self.id = id


@pytest.fixture(scope="module")
def short_provider() -> t.Iterator[DevProvider]:
    """A provider of one-second access tokens, as a user would configure one to
    see refresh happen, with rotation and reuse detection (oidc-provider's)."""
    provider = DevProvider(access_token_ttl=1, revoke_grant_on_reuse=True)
    with provider.serve():
        yield provider


@pytest.fixture
def short(short_provider: DevProvider) -> t.Iterator[DevProvider]:
    short_provider.reset_stats()
    yield short_provider
    short_provider.access_token_ttl = 1
    short_provider.rotate_refresh_tokens = True
    short_provider.token_delay = 0.0


def make_dev_app(dev: DevProvider, storage: BaseStorage | None = None) -> Flask:
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
    client = make_dev_app(short).test_client()
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
    client = make_dev_app(short).test_client()
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
    app = make_dev_app(short, SessionStorage())
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
