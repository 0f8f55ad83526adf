"""Attacks on the callback, beside tests/test_callback.py: hostile provider text,
oversized, repeated and malformed parameters, tampered pending logins, mix-up, and
arbitrary query strings thrown at it. Every one gets a clear 4xx, nobody is logged
in, no token is stored, and nothing the attacker sent is echoed unescaped."""

from __future__ import annotations

import json
import typing as t
from urllib.parse import quote

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from helpers.fakes import CLIENT_ID
from helpers.fakes import CLIENT_SECRET
from helpers.fakes import FakeIdP
from helpers.fakes import ISSUER
from helpers.fakes import response
from helpers.hardening import assert_nothing_happened
from helpers.hardening import BASE_URL
from helpers.hardening import callback
from helpers.hardening import complete
from helpers.hardening import make_site
from helpers.hardening import plug
from helpers.hardening import Site
from helpers.hardening import start_login
from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st

from flask_oauthclient import OAuth
from flask_oauthclient.login import MAX_QUERY_BYTES

PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    "{{ config.SECRET_KEY }}",
    "\r\nSet-Cookie: planted=1",
    "\u202egnp.exe",
    "\x00\x1b[31mred",
    "A" * 100_000,
]


@pytest.fixture
def site() -> Site:
    return make_site()


@pytest.fixture
def client(site: Site) -> FlaskClient:
    return site.client()


def assert_not_echoed(r: t.Any, payload: str) -> None:
    body = r.get_data(as_text=True)
    assert payload not in body
    assert payload[:40] not in body
    # The JSON form is escaped differently: look for it too.
    assert json.dumps(payload)[1:-1][:40] not in body


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
@pytest.mark.parametrize("accept", ["text/html", "application/json"])
def test_hostile_error_description_is_not_echoed(
    site: Site, client: FlaskClient, payload: str, accept: str
) -> None:
    params = start_login(client)
    r = client.get(
        "/login/corp/authorized",
        query_string={
            "state": params["state"],
            "error": "access_denied",
            "error_description": payload,
            "error_uri": "javascript:alert(1)",
        },
        headers={"Accept": accept},
        base_url=BASE_URL,
    )
    # A query string past MAX_QUERY_BYTES is refused before it is read at all.
    assert r.status_code == (403 if len(payload) < MAX_QUERY_BYTES else 400)
    assert_not_echoed(r, payload)
    assert "javascript:" not in r.get_data(as_text=True)
    assert "planted" not in r.headers.get("Set-Cookie", "")
    assert "/token" not in site.idp.calls
    assert_nothing_happened(site, client)


@pytest.mark.parametrize("payload", PAYLOADS[:4], ids=range(4))
def test_hostile_error_code_is_not_echoed(
    site: Site, client: FlaskClient, payload: str
) -> None:
    params = start_login(client)
    r = callback(client, state=params["state"], error=payload)
    assert r.status_code == 403
    assert_not_echoed(r, payload)
    assert_nothing_happened(site, client)


HOSTILE_BODIES: list[tuple[int, bytes, str]] = [
    (
        400,
        json.dumps(
            {"error": "invalid_grant", "error_description": PAYLOADS[0]}
        ).encode(),
        "application/json",
    ),
    (400, json.dumps({"error": PAYLOADS[1]}).encode(), "application/json"),
    (
        401,
        json.dumps(
            {"error": "invalid_client", "error_description": PAYLOADS[0]}
        ).encode(),
        "application/json",
    ),
    (500, f"<html><body>{PAYLOADS[0]}</body></html>".encode(), "text/html"),
    (
        200,
        json.dumps({"access_token": PAYLOADS[0], "token_type": PAYLOADS[1]}).encode(),
        "application/json",
    ),
]


@pytest.mark.parametrize(
    ("status", "body", "content_type"), HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES))
)
@pytest.mark.parametrize("accept", ["text/html", "application/json"])
def test_hostile_token_endpoint_bodies_are_not_echoed(
    site: Site,
    client: FlaskClient,
    status: int,
    body: bytes,
    content_type: str,
    accept: str,
) -> None:
    site.idp.token_handler = lambda request: response(
        status, raw=body, content_type=content_type
    )
    params = start_login(client)
    site.idp.nonces["the-code"] = params["nonce"]
    r = client.get(
        "/login/corp/authorized",
        query_string={"state": params["state"], "code": "the-code", "iss": ISSUER},
        headers={"Accept": accept},
        base_url=BASE_URL,
    )
    assert r.status_code in (400, 502)
    for payload in PAYLOADS[:2]:
        assert_not_echoed(r, payload)
    assert_nothing_happened(site, client)


@pytest.mark.parametrize(
    "answer",
    [
        lambda: response(
            500, raw=f"<b>{PAYLOADS[0]}</b>".encode(), content_type="text/html"
        ),
        lambda: response(200, {"sub": PAYLOADS[0], "email": PAYLOADS[1]}),
        lambda: response(200, raw=PAYLOADS[0].encode(), content_type="text/html"),
    ],
    ids=["500", "other-sub", "not-json"],
)
def test_hostile_userinfo_bodies_are_not_echoed(
    site: Site, client: FlaskClient, answer: t.Callable[[], requests.Response]
) -> None:
    site.idp.userinfo_handler = lambda request: answer()
    r = complete(client, site.idp, start_login(client))
    assert r.status_code in (400, 502)
    for payload in PAYLOADS[:2]:
        assert_not_echoed(r, payload)
    assert_nothing_happened(site, client)


@pytest.mark.parametrize(
    "query",
    [
        # Invalid UTF-8 and control characters, in every parameter.
        "state=%ff%fe&code=c",
        "state={state}&code=%ff%fe",
        "state={state}&code=a%00b",
        "state={state}&code=a%0d%0aSet-Cookie:%20x=1",
        "state={state}&code=a%7fb",
        "state={state}&code=caf%C3%A9",
        "state={state}&code=c&iss=%ff",
        "state={state}&error=%ff%00",
        "state={state}%00&code=c",
        # Repeated parameters: Flask keeps the first, oauthlib the last.
        "state={state}&code=c&iss=" + quote(ISSUER) + "&iss=" + quote(ISSUER),
        "state={state}&code=c&code=c",
        "state={state}&state=forged&code=c",
        # Oversized.
        "state={state}&code=" + "c" * 10_000,
        "state={state}&code=c&iss=" + "i" * 100_000,
        "state={state}&code=c&" + "&".join(f"p{i}=x" for i in range(5_000)),
        # An issuer that differs only a little (RFC 9207 mix-up).
        "state={state}&code=c&iss=" + quote(ISSUER + "/"),
        "state={state}&code=c&iss=" + quote(ISSUER.upper()),
        "state={state}&code=c&iss=",
    ],
)
def test_malformed_callback_is_400_without_token_request(
    site: Site, client: FlaskClient, query: str
) -> None:
    params = start_login(client)
    r = callback(client, query.format(state=params["state"]))
    # error= is the provider saying no: 403, whatever else is wrong.
    assert r.status_code == (403 if "error=" in query else 400), r.data[:200]
    assert "/token" not in site.idp.calls
    assert_nothing_happened(site, client)


@pytest.mark.parametrize(
    "pending",
    [
        "garbage",
        {"STATE": "garbage"},
        {"STATE": {"p": "corp"}},
        {"STATE": {"p": "corp", "v": None, "n": None, "x": "/", "e": "never"}},
        {"STATE": {"p": ["corp"], "v": 1, "n": 2, "x": 3, "e": 9e99, "u": {}}},
        {"STATE": {"p": "other", "v": None, "n": None, "x": "/", "e": 9e99}},
    ],
    ids=range(6),
)
def test_tampered_pending_login_is_400(
    site: Site, client: FlaskClient, pending: t.Any
) -> None:
    """A session whose pending login is not what the login view wrote (another
    extension version, a forged server-side session) is refused, not a 500."""
    with client.session_transaction(base_url=BASE_URL) as session:
        session["_oauthclient_pending"] = pending
    r = callback(client, state="STATE", code="c", iss=ISSUER)
    assert r.status_code == 400
    assert "/token" not in site.idp.calls
    assert_nothing_happened(site, client)


def test_state_of_another_provider_is_400() -> None:
    """A state issued for one provider is refused at another's callback (a mix-up
    of two providers): the code never reaches a token endpoint."""
    oauth = OAuth()
    for name in ("corp", "other"):
        oauth.register(
            name,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
            scope=["openid"],
        )
    app = Flask("two_providers")
    app.config.update(TESTING=True, SECRET_KEY="k", PREFERRED_URL_SCHEME="https")
    oauth.init_app(app)
    idp = FakeIdP()
    plug(app, idp, "corp")
    plug(app, idp, "other")
    client = app.test_client()
    params = start_login(client)
    idp.nonces["the-code"] = params["nonce"]
    r = client.get(
        "/login/other/authorized",
        query_string={"state": params["state"], "code": "the-code", "iss": ISSUER},
        base_url=BASE_URL,
    )
    assert r.status_code == 400
    assert "/token" not in idp.calls


# -- arbitrary input -------------------------------------------------------------------

_SITE: Site | None = None


def shared_site() -> Site:
    global _SITE
    if _SITE is None:
        _SITE = make_site()
    _SITE.logins.clear()
    _SITE.idp.calls.clear()
    return _SITE


def assert_clean(site: Site, client: FlaskClient, r: t.Any) -> None:
    assert 400 <= r.status_code < 500, (r.status_code, r.data[:300])
    assert b"Traceback" not in r.data
    assert site.logins == []
    with client.session_transaction(base_url=BASE_URL) as session:
        assert "_user_id" not in session
        assert "_oauthclient_tokens" not in session
    storage = site.storage
    assert storage._tokens == {} and storage._identities == {}


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(query=st.binary(max_size=600))
def test_arbitrary_query_strings_never_log_anyone_in(query: bytes) -> None:
    """Any bytes at all as the query string, with a login pending."""
    site = shared_site()
    client = site.client()
    start_login(client)
    r = client.get(
        "/login/corp/authorized",
        base_url=BASE_URL,
        environ_overrides={"QUERY_STRING": query.decode("latin-1")},
    )
    assert_clean(site, client, r)


_NAMES = st.sampled_from(
    ["state", "code", "iss", "error", "error_description", "session_state", "x"]
)
_VALUES = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["the-code", ISSUER, "access_denied", "", "STATE"]),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    params=st.lists(st.tuples(_NAMES, _VALUES), max_size=8),
    with_state=st.booleans(),
)
def test_arbitrary_parameters_with_a_valid_state_never_log_anyone_in(
    params: list[tuple[str, str]], with_state: bool
) -> None:
    """A genuine pending login and its real state, plus anything: the checks
    after the state (error, code, iss, the token endpoint) hold too. The provider
    never issued a code, so no combination may succeed."""
    site = shared_site()
    client = site.client()
    authorize = start_login(client)
    pairs = [
        (name, authorize["state"] if value == "STATE" else value)
        for name, value in params
    ]
    if with_state:
        pairs.insert(0, ("state", authorize["state"]))
    r = client.get("/login/corp/authorized", query_string=pairs, base_url=BASE_URL)
    assert_clean(site, client, r)
