"""API calls through ``oauth.<name>``: the per-request session, the token read once,
two users' tokens never mixed, and the environment (netrc, proxies). Refresh, before
expiry and on a 401, is tested in tests/test_refresh.py."""

from __future__ import annotations

import threading
import typing as t

import pytest
import requests
from flask import Flask
from flask import request
from flask.testing import FlaskClient
from helpers.api_app import CountingStorage
from helpers.api_app import give_token
from helpers.api_app import make_app
from helpers.fakes import FakeIdP
from werkzeug.serving import make_server


@pytest.fixture
def idp() -> FakeIdP:
    return FakeIdP()


@pytest.fixture
def storage() -> CountingStorage:
    return CountingStorage(user=lambda: request.headers.get("X-User"))


@pytest.fixture
def app(idp: FakeIdP, storage: CountingStorage) -> Flask:
    return make_app(idp, storage)[0]


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
