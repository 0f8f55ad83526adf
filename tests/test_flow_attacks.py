"""The session and redirects under attack, through the real views: ``next``
payloads after a full login, session fixation with a server-side session store,
login CSRF while the victim has a login of their own pending, and logout CSRF with
another session's token."""

from __future__ import annotations

import secrets
import typing as t
from urllib.parse import urljoin
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask import Request
from flask import Response
from flask.sessions import SessionInterface
from flask.sessions import SessionMixin
from flask.testing import FlaskClient
from helpers.hardening import authorize_params
from helpers.hardening import BASE_URL
from helpers.hardening import complete
from helpers.hardening import csrf
from helpers.hardening import log_in
from helpers.hardening import make_site
from helpers.hardening import Site
from helpers.hardening import start_login
from helpers.hardening import user_of
from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st

HOSTILE_NEXT = [
    "//evil.example",
    "///evil.example",
    "////evil.example",
    "https://evil.example/",
    "HTTPS://evil.example/",
    "https:evil.example",
    "http:/evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "/%2F%2Fevil.example",
    "/%252F%252Fevil.example",
    "/%5Cevil.example",
    "%2F%2Fevil.example",
    "javascript:alert(1)",
    " javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "/ok\r\nSet-Cookie: planted=1",
    "/%0d%0aLocation:%20https://evil.example",
    "/\t/evil.example",
    "\x00//evil.example",
    "//\u3002evil.example",
    "//evil.example%2F@app.example",
    "/" + "a" * 5000,
]


@pytest.fixture
def site() -> Site:
    return make_site()


@pytest.fixture
def client(site: Site) -> FlaskClient:
    return site.client()


def assert_stays_on_site(location: str) -> None:
    assert not any(c in location for c in "\r\n\t\x00")
    target = urlsplit(urljoin(BASE_URL + "/here", location))
    assert (target.scheme, target.netloc) == ("https", "app.example"), location
    assert location.startswith("/") and not location.startswith(("//", "/\\"))


@pytest.mark.parametrize("next_url", HOSTILE_NEXT, ids=range(len(HOSTILE_NEXT)))
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_hostile_next_falls_back_after_a_real_login(
    site: Site, client: FlaskClient, next_url: str, method: str
) -> None:
    r = client.open(
        "/login/corp",
        method=method,
        query_string={"next": next_url} if method == "GET" else None,
        data={"next": next_url} if method == "POST" else None,
        base_url=BASE_URL,
    )
    assert r.status_code == 302
    r = complete(client, site.idp, authorize_params(r.headers["Location"]))
    assert r.status_code == 302
    assert r.headers["Location"] == "/"
    assert "planted" not in r.headers.get("Set-Cookie", "")
    assert user_of(client) == "user-1"


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    next_url=st.one_of(
        st.text(max_size=60),
        st.builds(
            lambda a, b: a + b,
            st.sampled_from(["/", "//", "/\\", "http://", "%2F", "/%2F", "\\"]),
            st.text(max_size=40),
        ),
    )
)
def test_any_next_stays_on_the_site(next_url: str) -> None:
    """Whatever ``next`` the login was started with, the redirect after the
    callback stays on this site: the target itself, when it is a local path, or
    the default."""
    site = _shared()
    client = site.client()
    params = start_login(client, next=next_url or None)
    r = complete(client, site.idp, params)
    assert r.status_code == 302
    location = r.headers["Location"]
    assert_stays_on_site(location)


_SITE: Site | None = None


def _shared() -> Site:
    global _SITE
    if _SITE is None:
        _SITE = make_site()
    return _SITE


# -- session fixation -----------------------------------------------------------------


class ServerSession(dict, SessionMixin):  # type: ignore[type-arg]
    def __init__(self, data: dict[str, t.Any], sid: str) -> None:
        super().__init__(data)
        self.sid = sid


class FixableSessions(SessionInterface):
    """A server-side session store that, like many, accepts a session id it has
    never issued: an attacker can plant one in the victim's browser. It offers
    ``regenerate``, as Flask-Session does."""

    def __init__(self) -> None:
        self.store: dict[str, dict[str, t.Any]] = {}
        self.regenerated = 0

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        sid = request.cookies.get("sid") or secrets.token_urlsafe(16)
        return ServerSession(self.store.get(sid, {}), sid)

    def save_session(
        self, app: Flask, session: SessionMixin, response: Response
    ) -> None:
        assert isinstance(session, ServerSession)
        self.store[session.sid] = dict(session)
        response.set_cookie("sid", session.sid)

    def regenerate(self, session: ServerSession) -> None:
        self.regenerated += 1
        self.store.pop(session.sid, None)
        session.sid = secrets.token_urlsafe(16)


def test_session_id_is_regenerated_at_login() -> None:
    site = make_site()
    sessions = FixableSessions()
    site.app.session_interface = sessions
    victim = site.client()
    # The attacker plants a session id they know, with data of their own.
    sessions.store["attacker-sid"] = {"planted": "by the attacker"}
    victim.set_cookie("sid", "attacker-sid", domain="app.example")
    before = csrf(victim)
    assert log_in(site, victim).status_code == 302
    assert sessions.regenerated == 1
    sid = victim.get_cookie("sid", domain="app.example")
    assert sid is not None and sid.value != "attacker-sid"
    # The attacker's id leads to no logged-in session.
    assert "_user_id" not in sessions.store.get("attacker-sid", {})
    assert sessions.store[sid.value]["_user_id"] == "user-1"
    assert "planted" not in sessions.store[sid.value]
    # Nor does a CSRF token the attacker may have read before the login work.
    assert csrf(victim) != before


def test_cookie_session_is_reset_at_login(site: Site, client: FlaskClient) -> None:
    before = csrf(client)
    with client.session_transaction(base_url=BASE_URL) as session:
        session["_fresh"] = True
        session["planted"] = "by the attacker"
    log_in(site, client)
    with client.session_transaction(base_url=BASE_URL) as session:
        assert "planted" not in session
        assert session["_user_id"] == "user-1"
    assert csrf(client) != before


# -- login CSRF -----------------------------------------------------------------------


def test_login_csrf_with_a_login_of_the_victims_own_pending(site: Site) -> None:
    """The attacker sends the victim to the callback with the attacker's own code
    and state, while the victim has a login of their own pending: refused, the
    attacker's code is never exchanged, and the victim's login still works."""
    attacker, victim = site.client(), site.client()
    attackers = start_login(attacker)
    site.idp.nonces["attackers-code"] = attackers["nonce"]
    victims = start_login(victim, next="/mine")
    r = victim.get(
        "/login/corp/authorized",
        query_string={"state": attackers["state"], "code": "attackers-code"},
        base_url=BASE_URL,
    )
    assert r.status_code == 400
    assert "/token" not in site.idp.calls
    assert user_of(victim) is None
    r = complete(victim, site.idp, victims)
    assert (r.status_code, r.headers["Location"]) == (302, "/mine")


def test_login_is_started_fresh_each_time(site: Site, client: FlaskClient) -> None:
    """Every login start makes a new state, verifier and nonce: none can be
    predicted from an earlier one."""
    seen = [start_login(client) for _ in range(3)]
    for key in ("state", "nonce", "code_challenge"):
        assert len({params[key] for params in seen}) == 3


# -- logout CSRF ----------------------------------------------------------------------


def test_logout_with_another_sessions_csrf_token_changes_nothing(
    site: Site, client: FlaskClient
) -> None:
    log_in(site, client)
    attacker = site.client()
    r = client.post("/logout", data={"csrf_token": csrf(attacker)}, base_url=BASE_URL)
    assert r.status_code == 400
    assert user_of(client) == "user-1"
    assert site.storage.get("corp", user="user-1") is not None


def test_logout_accepts_the_csrf_header(site: Site, client: FlaskClient) -> None:
    log_in(site, client)
    r = client.post(
        "/logout", headers={"X-CSRF-Token": csrf(client)}, base_url=BASE_URL
    )
    assert r.status_code == 302
    assert user_of(client) is None
    assert site.storage.get("corp", user="user-1") is None
