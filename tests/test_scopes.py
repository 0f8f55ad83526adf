"""Incremental authorization (:mod:`flask_oauthclient.scopes`): ``has_scopes`` reads
the scope recorded with the user's token, ``request_scopes`` asks the provider for
declared scopes on top of the granted ones (with its own flag), and the callback
stores the wider token for the same user, refusing another identity (409) and any
scope not declared at ``register`` (400, nothing asked of the provider)."""

from __future__ import annotations

import typing as t
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from helpers.fakes import FakeIdP
from helpers.fakes import ISSUER
from helpers.hardening import BASE_URL
from helpers.hardening import callback
from helpers.hardening import complete
from helpers.hardening import log_in
from helpers.hardening import make_site
from helpers.hardening import Site
from helpers.hardening import user_of

from flask_oauthclient import ConfigurationError
from flask_oauthclient import OAuth
from flask_oauthclient import scopes
from flask_oauthclient.storage import SessionStorage

CALENDAR = "https://idp.example/auth/calendar"
REGISTER = {
    "optional_scopes": [CALENDAR, "drive"],
    "scope_request_params": {"include_granted_scopes": "true"},
}


class ScopedIdP(FakeIdP):
    """The FakeIdP, answering with the scope the test says was granted (``None``:
    no ``scope`` in the token response)."""

    def __init__(self) -> None:
        super().__init__()
        self.granted: str | None = "openid email profile"

    def token_response(self, nonce: str | None = None) -> dict[str, t.Any]:
        body = super().token_response(nonce)
        if self.granted is None:
            body.pop("scope")
        else:
            body["scope"] = self.granted
        return body


def build_site(granted: str | None = "openid email profile") -> Site:
    site = make_site(ScopedIdP(), register=REGISTER)
    t.cast(ScopedIdP, site.idp).granted = granted
    corp = site.oauth.corp

    @site.app.get("/calendar")
    @corp.scopes_required(CALENDAR)
    def calendar() -> str:
        return "the calendar"

    @site.app.post("/calendar")
    @corp.scopes_required(CALENDAR)
    def add_event() -> str:
        return "added"

    @site.app.get("/has/<path:scope>")
    def has(scope: str) -> str:
        return str(corp.has_scopes(*scope.split("+")))

    @site.app.get("/ask")
    def ask() -> t.Any:
        return corp.request_scopes(CALENDAR, next="/calendar?week=2")

    return site


@pytest.fixture
def site() -> Site:
    return build_site()


@pytest.fixture
def browser(site: Site) -> FlaskClient:
    client = site.client()
    assert log_in(site, client).status_code == 302
    assert user_of(client) == "user-1"
    return client


def get(client: FlaskClient, url: str, **kw: t.Any) -> t.Any:
    return client.get(url, base_url=BASE_URL, **kw)


def authorize_params(r: t.Any) -> dict[str, str]:
    assert r.status_code == 302, r.data
    location = r.headers["Location"]
    assert location.startswith(f"{ISSUER}/authorize?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def ask_for_calendar(client: FlaskClient) -> dict[str, str]:
    """``request_scopes`` → the login view → the provider's authorization URL."""
    r = get(client, "/ask")
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/login/corp?scope=")
    return authorize_params(get(client, r.headers["Location"]))


def stored(site: Site, user: str = "user-1") -> dict[str, t.Any] | None:
    with site.app.test_request_context():
        token = site.storage.get("corp", user=user)
    return dict(token) if token is not None else None


# ------------------------------------------------------------ has_scopes


def test_has_scopes_reads_the_tokens_scope(site: Site, browser: FlaskClient) -> None:
    assert get(browser, "/has/email").data == b"True"
    assert get(browser, f"/has/{CALENDAR}").data == b"False"
    assert get(site.client(), "/has/email").data == b"False"  # no token


def test_a_token_without_scope_has_the_registered_scope() -> None:
    site = build_site(granted=None)
    client = site.client()
    log_in(site, client)
    assert get(client, "/has/openid+email+profile").data == b"True"
    assert get(client, "/has/openid+drive").data == b"False"


def test_parse_scope_takes_the_providers_separator() -> None:
    assert scopes.parse_scope("repo,gist", ",") == ["repo", "gist"]
    assert scopes.parse_scope("a b  a", " ") == ["a", "b"]
    assert scopes.parse_scope(["x", "y"]) == ["x", "y"]
    # oauthlib keeps the scope as a list split on spaces only.
    assert scopes.parse_scope(["repo,gist"], ",") == ["repo", "gist"]
    assert scopes.parse_scope(None) == []


# -------------------------------------------------------- request_scopes


def test_a_scope_request_asks_for_the_granted_scopes_and_more(
    site: Site, browser: FlaskClient
) -> None:
    params = ask_for_calendar(browser)
    assert params["scope"].split() == ["openid", "email", "profile", CALENDAR]
    assert params["include_granted_scopes"] == "true"
    assert params["code_challenge_method"] == "S256" and params["nonce"]


def test_the_wider_token_is_stored_for_the_same_user(
    site: Site, browser: FlaskClient
) -> None:
    before = stored(site)
    assert before is not None
    params = ask_for_calendar(browser)
    t.cast(ScopedIdP, site.idp).granted = f"openid email profile {CALENDAR}"
    r = complete(browser, site.idp, params)
    assert r.status_code == 302
    assert r.headers["Location"] == "/calendar?week=2"
    after = stored(site)
    assert after is not None and after["access_token"] != before["access_token"]
    assert CALENDAR in scopes.parse_scope(after["scope"])
    assert user_of(browser) == "user-1"
    # No new login: on_login ran once, at the first login.
    assert len(site.logins) == 1
    assert get(browser, f"/has/{CALENDAR}").data == b"True"
    assert get(browser, "/calendar").data == b"the calendar"


def test_without_a_scope_in_the_answer_the_asked_scopes_are_recorded(
    site: Site, browser: FlaskClient
) -> None:
    params = ask_for_calendar(browser)
    t.cast(ScopedIdP, site.idp).granted = None
    assert complete(browser, site.idp, params).status_code == 302
    after = stored(site)
    assert after is not None
    assert after["scope"] == ["openid", "email", "profile", CALENDAR]


def test_another_identity_is_refused_with_409_and_nothing_changes(
    site: Site, browser: FlaskClient
) -> None:
    before = stored(site)
    params = ask_for_calendar(browser)
    site.idp.sub = "user-2"  # the user picked another account at the provider
    t.cast(ScopedIdP, site.idp).granted = f"openid {CALENDAR}"
    r = complete(browser, site.idp, params)
    assert r.status_code == 409
    assert b"Another account" in r.data
    assert stored(site) == before
    assert stored(site, "user-2") is None
    assert user_of(browser) == "user-1"
    assert get(browser, f"/has/{CALENDAR}").data == b"False"


def test_declining_the_extra_scopes_is_403_and_keeps_token_and_login(
    site: Site, browser: FlaskClient
) -> None:
    before = stored(site)
    params = ask_for_calendar(browser)
    r = callback(browser, state=params["state"], error="access_denied")
    assert r.status_code == 403
    # Not a login: the page says what was declined, and that the user is still in.
    assert b"Permission not granted" in r.data
    assert b"You are still logged in" in r.data
    assert b"Login refused" not in r.data
    assert b"Try again" not in r.data  # that would log in again
    assert stored(site) == before
    assert user_of(browser) == "user-1"
    assert get(browser, "/has/email").data == b"True"
    assert get(browser, f"/has/{CALENDAR}").data == b"False"


@pytest.mark.parametrize(
    "query",
    [
        {"scope": "admin"},
        {"scope": f"{CALENDAR} admin"},
        {"scope": ""},
        {"scope": "x" * 5000},
        [("scope", CALENDAR), ("scope", "drive")],
    ],
    ids=["undeclared", "one-undeclared", "empty", "huge", "repeated"],
)
def test_a_crafted_scope_link_is_400_and_asks_nothing(
    site: Site, browser: FlaskClient, query: t.Any
) -> None:
    with browser.session_transaction(base_url=BASE_URL) as session:
        pending_before = dict(session.get("_oauthclient_pending") or {})
    calls = list(site.idp.calls)
    r = get(browser, "/login/corp", query_string=query)
    assert r.status_code == 400
    assert b"asks for a permission this site does not ask for" in r.data
    assert "Location" not in r.headers
    assert site.idp.calls == calls
    with browser.session_transaction(base_url=BASE_URL) as session:
        assert dict(session.get("_oauthclient_pending") or {}) == pending_before


def test_a_scope_request_without_a_token_is_401(site: Site) -> None:
    r = get(site.client(), "/login/corp", query_string={"scope": CALENDAR})
    assert r.status_code == 401
    assert "/authorize" not in r.headers.get("Location", "")


def test_a_user_who_logged_out_meanwhile_gets_nothing(
    site: Site, browser: FlaskClient
) -> None:
    params = ask_for_calendar(browser)
    with browser.session_transaction(base_url=BASE_URL) as session:
        del session["_user_id"]
    r = complete(browser, site.idp, params)
    assert r.status_code == 400
    after = stored(site)
    assert after is not None and CALENDAR not in scopes.parse_scope(after["scope"])


def test_request_scopes_refuses_undeclared_scopes(site: Site) -> None:
    with (
        site.app.test_request_context(),
        pytest.raises(ConfigurationError, match="optional_scopes"),
    ):
        site.oauth.corp.request_scopes("admin")
    with pytest.raises(ConfigurationError, match="optional_scopes"):
        site.oauth.corp.scopes_required("admin")


# -------------------------------------------------------- scopes_required


def test_a_browser_is_sent_to_grant_the_scope_and_back(
    site: Site, browser: FlaskClient
) -> None:
    r = get(browser, "/calendar?day=1")
    assert r.status_code == 302
    location = urlsplit(r.headers["Location"])
    assert location.path == "/login/corp"
    query = parse_qs(location.query)
    assert query == {"scope": [CALENDAR], "next": ["/calendar?day=1"]}
    params = authorize_params(get(browser, r.headers["Location"]))
    t.cast(ScopedIdP, site.idp).granted = f"openid email profile {CALENDAR}"
    r = complete(browser, site.idp, params)
    assert r.headers["Location"] == "/calendar?day=1"
    assert get(browser, "/calendar?day=1").data == b"the calendar"


def test_an_api_client_gets_403_insufficient_scope(
    site: Site, browser: FlaskClient
) -> None:
    r = get(browser, "/calendar", headers={"Accept": "application/json"})
    assert r.status_code == 403
    assert r.json["error"] == "insufficient_scope"
    r = browser.post("/calendar", base_url=BASE_URL)
    assert r.status_code == 403
    assert b"Permission needed" in r.data


def test_without_a_token_the_browser_logs_in_first(site: Site) -> None:
    r = get(site.client(), "/calendar")
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/login/corp?next=")
    r = get(site.client(), "/calendar", headers={"Accept": "application/json"})
    assert r.status_code == 401


# ------------------------------------------------- a storage without users


def session_site() -> tuple[Flask, OAuth, FakeIdP]:
    idp = ScopedIdP()
    oauth = OAuth()
    oauth.register(
        "corp",
        client_id="client-1",
        client_secret="secret-1",
        server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
        scope=["openid", "email", "profile"],
        api_base_url=f"{ISSUER}/api/",
        **REGISTER,
    )
    app = Flask("session_site")
    app.config.update(TESTING=True, SECRET_KEY="s", PREFERRED_URL_SCHEME="https")
    oauth.init_app(app, storage=SessionStorage())
    ap = app.extensions["oauthclient"].providers["corp"]
    ap.adapter = idp
    ap.http.mount("https://", idp)

    @app.get("/has")
    def has() -> str:
        return str(oauth.corp.has_scopes(CALENDAR))

    return app, oauth, idp


@pytest.mark.parametrize(("sub", "status"), [("user-1", 302), ("user-2", 409)])
def test_session_storage_checks_the_identity_with_the_provider(
    sub: str, status: int
) -> None:
    """SessionStorage keeps neither ID tokens nor identities: the scope request
    asks the provider who the token's user is, and the callback must match."""
    app, oauth, idp = session_site()
    client = app.test_client()
    r = get(client, "/login/corp")
    assert complete(client, idp, authorize_params(r)).status_code == 302
    r = get(client, "/login/corp", query_string={"scope": CALENDAR})
    assert "/userinfo" in idp.calls
    params = authorize_params(r)
    idp.sub = sub
    t.cast(ScopedIdP, idp).granted = f"openid {CALENDAR}"
    assert complete(client, idp, params).status_code == status
    assert get(client, "/has").data == (b"True" if status == 302 else b"False")
