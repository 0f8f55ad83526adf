"""Every way a callback can be wrong gets a clear 4xx (or 502/503/504 when the
provider is at fault), no token request where the input is already wrong, no token
stored and nobody logged in."""

from __future__ import annotations

import time
import typing as t
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from helpers.fakes import CLIENT_ID
from helpers.fakes import CLIENT_SECRET
from helpers.fakes import FakeIdP
from helpers.fakes import ISSUER
from helpers.fakes import response

from flask_oauthclient import OAuth
from flask_oauthclient.signals import oauth_error
from flask_oauthclient.storage import MemoryStorage


@pytest.fixture
def idp() -> FakeIdP:
    return FakeIdP()


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def oauth(app: Flask, idp: FakeIdP, storage: MemoryStorage) -> OAuth:
    oauth = OAuth()
    oauth.register(
        "corp",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
        scope=["openid", "email", "profile"],
    )
    app.config["PREFERRED_URL_SCHEME"] = "https"
    oauth.init_app(app, storage=storage)
    ap = app.extensions["oauthclient"].providers["corp"]
    ap.adapter = idp
    ap.http.mount("https://", idp)
    return oauth


@pytest.fixture
def client(app: Flask, oauth: OAuth) -> FlaskClient:
    return app.test_client()


def start_login(client: FlaskClient, next: str | None = None) -> dict[str, str]:
    r = client.get(
        "/login/corp",
        query_string={"next": next} if next else None,
        base_url="https://app.example",
    )
    assert r.status_code == 302
    query = parse_qs(urlsplit(r.headers["Location"]).query)
    return {k: v[0] for k, v in query.items()}


def callback(client: FlaskClient, **params: t.Any) -> t.Any:
    return client.get(
        "/login/corp/authorized", query_string=params, base_url="https://app.example"
    )


def complete(
    client: FlaskClient, idp: FakeIdP, params: dict[str, str], **extra: t.Any
) -> t.Any:
    idp.nonces["the-code"] = params["nonce"]
    args = {"state": params["state"], "code": "the-code", "iss": ISSUER}
    args.update(extra)
    return callback(client, **{k: v for k, v in args.items() if v is not None})


def test_login_redirects_with_pkce_nonce_and_state(client: FlaskClient) -> None:
    params = start_login(client)
    assert params["response_type"] == "code"
    assert params["client_id"] == CLIENT_ID
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert params["scope"] == "openid email profile"
    assert params["redirect_uri"] == "https://app.example/login/corp/authorized"
    assert len(params["state"]) >= 43 and len(params["nonce"]) >= 16


def test_successful_login_stores_token_and_redirects(
    client: FlaskClient, idp: FakeIdP, storage: MemoryStorage
) -> None:
    params = start_login(client, next="/after?x=1")
    r = complete(client, idp, params)
    assert r.status_code == 302
    assert r.headers["Location"] == "/after?x=1"
    token = storage.get("corp")
    assert token is not None and token["access_token"] == "access-1"


def assert_nothing_happened(storage: MemoryStorage, client: FlaskClient) -> None:
    assert storage.get("corp") is None
    with client.session_transaction(base_url="https://app.example") as session:
        assert "_user_id" not in session


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({}, "missing state"),
        ({"state": ""}, "empty state"),
        ({"state": "forged", "code": "c"}, "forged state"),
        ({"state": "x" * 5000, "code": "c"}, "oversized state"),
    ],
)
def test_bad_state_is_400_without_token_request(
    client: FlaskClient,
    idp: FakeIdP,
    storage: MemoryStorage,
    params: dict[str, str],
    reason: str,
) -> None:
    start_login(client)
    r = callback(client, **params)
    assert r.status_code == 400, reason
    assert b"Login failed" in r.data
    assert "/token" not in idp.calls
    assert_nothing_happened(storage, client)


def test_duplicated_state_is_400(
    client: FlaskClient, idp: FakeIdP, storage: MemoryStorage
) -> None:
    params = start_login(client)
    r = client.get(
        f"/login/corp/authorized?state={params['state']}&state={params['state']}&code=c",
        base_url="https://app.example",
    )
    assert r.status_code == 400
    assert "/token" not in idp.calls
    assert_nothing_happened(storage, client)


def test_replayed_state_is_400(client: FlaskClient, idp: FakeIdP) -> None:
    params = start_login(client)
    assert complete(client, idp, params).status_code == 302
    calls = len(idp.calls)
    r = complete(client, idp, params)
    assert r.status_code == 400
    assert idp.calls[calls:].count("/token") == 0


def test_expired_state_is_400(
    app: Flask,
    client: FlaskClient,
    idp: FakeIdP,
    storage: MemoryStorage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    params = start_login(client)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 601)
    r = complete(client, idp, params)
    assert r.status_code == 400
    assert "/token" not in idp.calls
    assert_nothing_happened(storage, client)


def test_state_of_another_session_is_400(
    app: Flask, client: FlaskClient, idp: FakeIdP, storage: MemoryStorage
) -> None:
    params = start_login(client)
    other = app.test_client()
    idp.nonces["the-code"] = params["nonce"]
    r = other.get(
        "/login/corp/authorized",
        query_string={"state": params["state"], "code": "the-code"},
        base_url="https://app.example",
    )
    assert r.status_code == 400  # login CSRF: the state is bound to the session
    assert "/token" not in idp.calls


def test_two_tabs_both_log_in(client: FlaskClient, idp: FakeIdP) -> None:
    first = start_login(client, next="/one")
    second = start_login(client, next="/two")
    r2 = complete(client, idp, second)
    r1 = complete(client, idp, first)
    assert (r1.status_code, r1.headers["Location"]) == (302, "/one")
    assert (r2.status_code, r2.headers["Location"]) == (302, "/two")


def test_pending_logins_are_bounded(app: Flask, client: FlaskClient) -> None:
    for _ in range(12):
        start_login(client)
    with client.session_transaction(base_url="https://app.example") as session:
        assert len(session["_oauthclient_pending"]) == 5


@pytest.mark.parametrize(
    ("error", "description"),
    [
        ("access_denied", "The user said no"),
        ("access_denied", "<script>alert(1)</script>"),
        ("server_error", None),
    ],
)
def test_provider_error_is_a_clear_page(
    client: FlaskClient,
    idp: FakeIdP,
    storage: MemoryStorage,
    error: str,
    description: str | None,
) -> None:
    params = start_login(client)
    query = {"state": params["state"], "error": error}
    if description:
        query["error_description"] = description
    r = callback(client, **query)
    assert r.status_code == 403
    assert b"<script>" not in r.data
    assert b"cancelled" in r.data
    assert b"Login refused" in r.data
    assert b'href="/login/corp">Try again' in r.data
    assert "/token" not in idp.calls
    assert_nothing_happened(storage, client)


@pytest.mark.parametrize("codes", [[], [""], ["a", "b"], ["x" * 5000]])
def test_missing_or_duplicated_code_is_400(
    client: FlaskClient, idp: FakeIdP, storage: MemoryStorage, codes: list[str]
) -> None:
    params = start_login(client)
    query = "&".join(f"code={c}" for c in codes)
    r = client.get(
        f"/login/corp/authorized?state={params['state']}&{query}",
        base_url="https://app.example",
    )
    assert r.status_code == 400
    assert "/token" not in idp.calls
    assert_nothing_happened(storage, client)


def test_iss_mismatch_is_400(
    client: FlaskClient, idp: FakeIdP, storage: MemoryStorage
) -> None:
    params = start_login(client)
    r = complete(client, idp, params, iss="https://evil.example")
    assert r.status_code == 400
    assert "/token" not in idp.calls
    assert_nothing_happened(storage, client)


def test_missing_iss_when_advertised_is_400(client: FlaskClient, idp: FakeIdP) -> None:
    params = start_login(client)
    r = complete(client, idp, params, iss=None)
    assert r.status_code == 400
    assert "/token" not in idp.calls


def test_invalid_code_is_400(
    client: FlaskClient, idp: FakeIdP, storage: MemoryStorage
) -> None:
    params = start_login(client)
    r = callback(client, state=params["state"], code="not-issued", iss=ISSUER)
    assert r.status_code == 400
    assert_nothing_happened(storage, client)


def _raise(exc: Exception) -> t.Callable[[t.Any], requests.Response]:
    def handler(request: t.Any) -> requests.Response:
        raise exc

    return handler


@pytest.mark.parametrize(
    ("handler", "status"),
    [
        (
            lambda r: response(500, raw=b"<html>oops</html>", content_type="text/html"),
            502,
        ),
        (lambda r: response(200, raw=b"{not json"), 502),
        (lambda r: response(200, [1, 2, 3]), 502),
        (lambda r: response(200, {"token_type": "Bearer"}), 502),
        (lambda r: response(200, {"access_token": "a", "token_type": "MAC"}), 502),
        (lambda r: response(200, {"access_token": "a", "expires_in": "soon"}), 502),
        (lambda r: response(401, {"error": "invalid_client"}), 502),
        (lambda r: response(503, raw=b"busy", content_type="text/plain"), 502),
        (lambda r: response(200, raw=b"x" * 300_000), 502),
        (_raise(requests.ConnectionError("refused")), 503),
        (_raise(requests.ReadTimeout("slow")), 504),
    ],
)
def test_token_endpoint_failures(
    client: FlaskClient,
    idp: FakeIdP,
    storage: MemoryStorage,
    handler: t.Callable[[t.Any], requests.Response],
    status: int,
) -> None:
    idp.token_handler = handler
    params = start_login(client)
    errors: list[t.Any] = []
    with oauth_error.connected_to(lambda sender, **kw: errors.append(kw["error"])):
        r = complete(client, idp, params)
    assert r.status_code == status
    assert b"Traceback" not in r.data
    assert len(errors) == 1
    assert_nothing_happened(storage, client)


def test_changed_scope_is_accepted_and_recorded(
    client: FlaskClient, idp: FakeIdP, storage: MemoryStorage
) -> None:
    def narrowed(request: t.Any) -> requests.Response:
        body = idp.token_response(next(iter(idp.nonces.values())))
        body["scope"] = "openid"
        return response(200, body)

    idp.token_handler = narrowed
    params = start_login(client)
    r = complete(client, idp, params)
    assert r.status_code == 302
    token = storage.get("corp")
    assert token is not None and token["scope"] == ["openid"]


def test_json_clients_get_json_errors(client: FlaskClient) -> None:
    start_login(client)
    r = client.get(
        "/login/corp/authorized?state=nope",
        headers={"Accept": "application/json"},
        base_url="https://app.example",
    )
    assert r.status_code == 400
    assert r.json is not None
    assert r.json["error"] == "unknown_state"
    assert "expired" in r.json["error_description"]
