"""The CSRF token of the extension's POST views (logout, link, unlink) is compared
whole, against a session that already holds one: a missing, empty, truncated or
extended token, or another session's, is refused with a 400 and changes nothing;
the session's own token is accepted, in the ``csrf_token`` form field or in the
``X-CSRF-Token`` header.

(Before these tests every refusal was tested on a session without a token, which
a comparison accepting an empty or prefix token would have passed.)"""

from __future__ import annotations

import typing as t

import pytest
from flask.testing import FlaskClient
from helpers.hardening import authorize_params
from helpers.hardening import BASE_URL
from helpers.hardening import csrf
from helpers.hardening import make_site
from helpers.hardening import Site
from helpers.hardening import user_of
from werkzeug.test import TestResponse

from flask_oauthclient.csrf import csrf_token

ACTIONS = ("logout", "link", "unlink")
URLS = {
    "logout": "/logout",
    "link": "/login/second/link",
    "unlink": "/login/second/unlink",
}

#: What a forger may send instead of the session's token, made from that token
#: and another session's.
Forgery = t.Callable[[str, str], "str | None"]
FORGERIES: dict[str, Forgery] = {
    "missing": lambda token, other: None,
    "empty": lambda token, other: "",
    "first-char": lambda token, other: token[:1],
    "prefix": lambda token, other: token[: len(token) // 2],
    "all-but-last-char": lambda token, other: token[:-1],
    "extra-char": lambda token, other: token + "x",
    "extra-space": lambda token, other: token + " ",
    "other-case": lambda token, other: token.swapcase(),
    "non-ascii": lambda token, other: token[:-1] + "é",
    "other-session": lambda token, other: other,
}


@pytest.fixture
def site() -> Site:
    return make_site(providers=("corp", "second"))


@pytest.fixture
def client(site: Site) -> FlaskClient:
    """Alice, logged in, with a token for both providers (so either one may be
    unlinked), and a CSRF token already in her session."""
    client = site.client()
    assert client.post("/as/alice", base_url=BASE_URL).status_code == 200
    site.storage.set("corp", {"access_token": "a"}, user="alice")
    site.storage.set("second", {"access_token": "b"}, user="alice")
    return client


def session_token(client: FlaskClient) -> str:
    """The CSRF token the session holds: a page renders it, and it stays."""
    token = csrf(client)
    assert len(token) >= 32
    assert csrf(client) == token
    return token


def post(
    client: FlaskClient,
    action: str,
    token: str | None,
    where: str = "form",
    **headers: str,
) -> TestResponse:
    data: dict[str, str] = {}
    if token is not None and where == "form":
        data["csrf_token"] = token
    elif token is not None:
        headers["X-CSRF-Token"] = token
    return client.post(URLS[action], data=data, headers=headers, base_url=BASE_URL)


def pending(client: FlaskClient) -> bool:
    """Whether a login or link is under way in the session."""
    with client.session_transaction(base_url=BASE_URL) as session:
        return "_oauthclient_pending" in session


def assert_nothing_changed(site: Site, client: FlaskClient, token: str) -> None:
    assert user_of(client) == "alice"
    assert site.storage.get("corp", user="alice") == {"access_token": "a"}
    assert site.storage.get("second", user="alice") == {"access_token": "b"}
    assert not pending(client)
    # The session was neither cleared nor given a new token.
    assert csrf(client) == token


@pytest.mark.parametrize("where", ["form", "header"])
@pytest.mark.parametrize("forgery", FORGERIES.values(), ids=FORGERIES.keys())
@pytest.mark.parametrize("action", ACTIONS)
def test_a_wrong_token_is_refused_and_changes_nothing(
    site: Site, client: FlaskClient, action: str, forgery: Forgery, where: str
) -> None:
    token = session_token(client)
    other = session_token(site.client())
    assert other != token
    sent = forgery(token, other)
    assert sent != token
    r = post(client, action, sent, where)
    assert r.status_code == 400, r.data
    assert_nothing_changed(site, client, token)


@pytest.mark.parametrize("action", ACTIONS)
def test_a_wrong_form_field_is_not_saved_by_a_right_header(
    site: Site, client: FlaskClient, action: str
) -> None:
    """The form field, when there is one, is the token checked."""
    token = session_token(client)
    r = client.post(
        URLS[action],
        data={"csrf_token": token[:-1]},
        headers={"X-CSRF-Token": token},
        base_url=BASE_URL,
    )
    assert r.status_code == 400
    assert_nothing_changed(site, client, token)


@pytest.mark.parametrize("action", ACTIONS)
def test_the_refusal_in_json_is_csrf_error(
    site: Site, client: FlaskClient, action: str
) -> None:
    token = session_token(client)
    r = post(client, action, token[:-1], Accept="application/json")
    assert r.status_code == 400
    assert r.json is not None
    assert r.json["error"] == "csrf_error"
    assert r.json["error_description"]
    assert token not in r.get_data(as_text=True)
    assert_nothing_changed(site, client, token)


def test_a_token_of_before_the_logout_is_refused(
    site: Site, client: FlaskClient
) -> None:
    """Logging out clears the session: its token goes with it."""
    old = session_token(client)
    assert post(client, "logout", old).status_code == 302
    assert client.post("/as/alice", base_url=BASE_URL).status_code == 200
    site.storage.set("second", {"access_token": "b"}, user="alice")
    new = session_token(client)
    assert new != old
    assert post(client, "unlink", old).status_code == 400
    assert site.storage.get("second", user="alice") == {"access_token": "b"}


@pytest.mark.parametrize("where", ["form", "header"])
def test_logout_with_the_right_token(
    site: Site, client: FlaskClient, where: str
) -> None:
    r = post(client, "logout", session_token(client), where)
    assert (r.status_code, r.headers["Location"]) == (302, "/")
    assert user_of(client) is None
    assert site.storage.get("corp", user="alice") is None
    assert site.storage.get("second", user="alice") is None


@pytest.mark.parametrize("where", ["form", "header"])
def test_link_with_the_right_token(site: Site, client: FlaskClient, where: str) -> None:
    r = post(client, "link", session_token(client), where)
    assert r.status_code == 302, r.data
    assert authorize_params(r.headers["Location"])["state"]
    assert pending(client)
    assert user_of(client) == "alice"


@pytest.mark.parametrize("where", ["form", "header"])
def test_unlink_with_the_right_token(
    site: Site, client: FlaskClient, where: str
) -> None:
    r = post(client, "unlink", session_token(client), where)
    assert r.status_code == 302, r.data
    assert site.storage.get("second", user="alice") is None
    assert site.storage.get("corp", user="alice") == {"access_token": "a"}
    assert user_of(client) == "alice"


def test_csrf_token_in_a_request_is_the_one_the_views_accept() -> None:
    """``csrf_token()`` called in a request of the client, not through a template,
    gives the session's token."""
    site = make_site(providers=("corp", "second"))

    @site.app.get("/token")
    def token_view() -> str:
        return csrf_token()

    client = site.client()
    assert client.post("/as/alice", base_url=BASE_URL).status_code == 200
    site.storage.set("corp", {"access_token": "a"}, user="alice")
    site.storage.set("second", {"access_token": "b"}, user="alice")
    token = client.get("/token", base_url=BASE_URL).get_data(as_text=True)
    assert token == csrf(client)
    assert post(client, "unlink", token[:-1]).status_code == 400
    assert site.storage.get("second", user="alice") == {"access_token": "b"}
    assert post(client, "unlink", token).status_code == 302
    assert site.storage.get("second", user="alice") is None
