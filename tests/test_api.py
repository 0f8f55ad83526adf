"""API calls through ``oauth.<name>``: the per-request session, the token read once,
refresh before expiry and on a 401, and the failures of refresh."""

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
from helpers.fakes import CLIENT_ID
from helpers.fakes import CLIENT_SECRET
from helpers.fakes import FakeIdP
from helpers.fakes import ISSUER
from helpers.fakes import response
from werkzeug.serving import make_server

from flask_oauthclient import OAuth
from flask_oauthclient import ReauthorizationRequired
from flask_oauthclient import TokenExpiredError
from flask_oauthclient import TokenUpdated
from flask_oauthclient.signals import token_refreshed
from flask_oauthclient.signals import token_revoked
from flask_oauthclient.storage import MemoryStorage


class CountingStorage(MemoryStorage):
    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads = 0

    def get(self, provider: str, **kwargs: t.Any) -> t.Any:
        self.reads += 1
        return super().get(provider, **kwargs)


@pytest.fixture
def idp() -> FakeIdP:
    return FakeIdP()


@pytest.fixture
def storage() -> CountingStorage:
    return CountingStorage(user=lambda: request.headers.get("X-User"))


def make_app(
    idp: FakeIdP, storage: MemoryStorage, **register: t.Any
) -> tuple[Flask, OAuth]:
    app = Flask(__name__)
    app.config.update(TESTING=True, SECRET_KEY="k")
    oauth = OAuth()
    oauth.register(
        "corp",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
        scope=["openid", "email"],
        api_base_url=f"{ISSUER}/api/",
        **register,
    )
    oauth.init_app(app, storage=storage)
    ap = app.extensions["oauthclient"].providers["corp"]
    ap.adapter = idp
    ap.http.mount("https://", idp)

    @app.get("/me")
    def me() -> t.Any:
        r = oauth.corp.get("me")
        return jsonify(status=r.status_code, **r.json())

    @app.get("/twice")
    def twice() -> t.Any:
        first = oauth.corp.get("me").json()["token"]
        second = oauth.corp.get("me").json()["token"]
        same = oauth.corp.session is oauth.corp.session
        return jsonify(first=first, second=second, same_session=same)

    return app, oauth


@pytest.fixture
def app(idp: FakeIdP, storage: CountingStorage) -> Flask:
    return make_app(idp, storage)[0]


def give_token(
    idp: FakeIdP, storage: MemoryStorage, user: str, **changes: t.Any
) -> dict[str, t.Any]:
    token = idp.token_response()
    token["expires_at"] = time.time() + token["expires_in"]
    token.update(changes)
    token = {k: v for k, v in token.items() if v is not None}
    storage.set("corp", token, user=user)
    return token


def test_get_joins_api_base_url_and_sends_the_users_token(
    client: FlaskClient, idp: FakeIdP, storage: CountingStorage
) -> None:
    token = give_token(idp, storage, "alice")
    r = client.get("/me", headers={"X-User": "alice"})
    assert r.json == {"status": 200, "token": token["access_token"]}
    assert idp.calls[-1] == "/api/me"


def test_token_read_once_and_session_built_once_per_request(
    client: FlaskClient, idp: FakeIdP, storage: CountingStorage
) -> None:
    give_token(idp, storage, "alice")
    storage.reads = 0
    r = client.get("/twice", headers={"X-User": "alice"})
    assert r.json is not None and r.json["same_session"] is True
    assert storage.reads == 1
    client.get("/twice", headers={"X-User": "alice"})
    assert storage.reads == 2


def test_no_token_sends_a_browser_to_login_and_an_api_client_a_401(
    client: FlaskClient,
) -> None:
    r = client.get("/me?x=1", headers={"X-User": "nobody"})
    assert r.status_code == 302
    assert r.headers["Location"] == "/login/corp?next=/me?x%3D1"
    r = client.get("/me", headers={"X-User": "nobody", "Accept": "application/json"})
    assert r.status_code == 401
    assert r.json is not None and r.json["error"] == "token_missing"


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


def test_two_users_concurrently_never_see_each_others_token(
    app: Flask, idp: FakeIdP, storage: CountingStorage
) -> None:
    tokens = {
        user: give_token(idp, storage, user)["access_token"] for user in ("a", "b")
    }
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    mixed: list[tuple[str, str]] = []

    def hammer(user: str) -> None:
        with requests.Session() as http:
            for _ in range(40):
                got = http.get(
                    f"http://127.0.0.1:{server.port}/twice", headers={"X-User": user}
                ).json()
                for seen in (got["first"], got["second"]):
                    if seen != tokens[user]:
                        mixed.append((user, seen))

    try:
        workers = [threading.Thread(target=hammer, args=(u,)) for u in ("a", "b") * 3]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        server.shutdown()
        thread.join()
    assert mixed == []


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


def test_other_refresh_errors_are_a_provider_error_and_keep_the_token(
    client: FlaskClient, idp: FakeIdP, storage: CountingStorage
) -> None:
    old = give_token(idp, storage, "alice", expires_at=time.time() - 5)
    idp.token_handler = lambda request: response(401, {"error": "invalid_client"})
    r = client.get("/me", headers={"X-User": "alice", "Accept": "application/json"})
    assert r.status_code == 502
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


def test_a_netrc_entry_never_replaces_the_bearer_token(
    client: FlaskClient,
    idp: FakeIdP,
    storage: CountingStorage,
    tmp_path: t.Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine idp.example login someone password hunter22\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    token = give_token(idp, storage, "alice")
    r = client.get("/me", headers={"X-User": "alice"})
    assert r.json == {"status": 200, "token": token["access_token"]}


def test_proxies_from_the_environment_are_honoured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flask_oauthclient.transport import Environment

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    env = Environment()
    assert env.proxies("https://idp.example/token")["https"] == (
        "http://proxy.example:3128"
    )
    assert "https" not in env.proxies("https://internal.example/api")
