"""Account linking: a logged-in user links another provider with an explicit,
CSRF-protected POST; the token is stored for that user (``on_login`` is not called);
an identity that belongs to another user is refused with a 409; unlinking keeps at
least one way to log in; linking by email only on opt-in, only for verified
addresses."""

from __future__ import annotations

import typing as t
import uuid

import pytest
from flask import render_template_string
from flask.testing import FlaskClient
from flask_login import login_user
from helpers.fakes import CLIENT_ID
from helpers.fakes import CLIENT_SECRET
from helpers.fakes import FakeIdP
from helpers.fakes import ISSUER
from helpers.hardening import authorize_params
from helpers.hardening import BASE_URL
from helpers.hardening import complete
from helpers.hardening import csrf
from helpers.hardening import log_in
from helpers.hardening import make_site
from helpers.hardening import plug
from helpers.hardening import Site
from helpers.hardening import user_of
from test_sqla import add_users
from test_sqla import created
from test_sqla import make_env

from flask_oauthclient import OAuth
from flask_oauthclient.storage import Identity


@pytest.fixture
def site() -> Site:
    return make_site(providers=("corp", "second"))


@pytest.fixture
def client(site: Site) -> FlaskClient:
    return site.client()


def as_user(client: FlaskClient, user_id: str) -> None:
    assert client.post(f"/as/{user_id}", base_url=BASE_URL).status_code == 200


def start_link(
    client: FlaskClient, provider: str = "second", **form: str
) -> dict[str, str]:
    r = client.post(
        f"/login/{provider}/link",
        data={"csrf_token": csrf(client), **form},
        base_url=BASE_URL,
    )
    assert r.status_code == 302, r.data
    return authorize_params(r.headers["Location"])


def test_link_stores_the_token_for_the_current_user(
    site: Site, client: FlaskClient
) -> None:
    as_user(client, "alice")
    site.idp.sub = "alice-at-second"
    params = start_link(client, next="/settings")
    r = complete(client, site.idp, params, "second")
    assert (r.status_code, r.headers["Location"]) == (302, "/settings")
    assert site.logins == []  # on_login is for logins, not links
    assert user_of(client) == "alice"
    token = site.storage.get("second", user="alice")
    assert token is not None and token["access_token"] == "access-1"
    identity = Identity(ISSUER, "alice-at-second")
    assert site.storage.find_user("second", identity) == "alice"


def test_identity_of_another_user_is_409(site: Site, client: FlaskClient) -> None:
    # Bob logged in with corp as user-1 before.
    bob = site.client()
    log_in(site, bob)
    assert site.storage.find_user("corp", Identity(ISSUER, "user-1")) == "user-1"
    # Alice tries to link that same corp identity.
    as_user(client, "alice")
    params = start_link(client, "corp")
    r = complete(client, site.idp, params, "corp")
    assert r.status_code == 409
    assert b"already linked to another user" in r.data
    assert site.storage.get("corp", user="alice") is None
    assert site.storage.find_user("corp", Identity(ISSUER, "user-1")) == "user-1"
    assert user_of(client) == "alice"


@pytest.mark.parametrize(
    "data",
    [{}, {"csrf_token": ""}, {"csrf_token": "forged"}, "other-session"],
    ids=["none", "empty", "forged", "other-session"],
)
@pytest.mark.parametrize("action", ["link", "unlink"])
def test_link_and_unlink_need_the_csrf_token(
    site: Site, client: FlaskClient, data: t.Any, action: str
) -> None:
    as_user(client, "alice")
    site.storage.set("corp", {"access_token": "a"}, user="alice")
    site.storage.set("second", {"access_token": "b"}, user="alice")
    if data == "other-session":
        attacker = site.client()
        data = {"csrf_token": csrf(attacker)}  # valid, but for another session
    r = client.post(f"/login/second/{action}", data=data, base_url=BASE_URL)
    assert r.status_code == 400
    assert site.storage.get("second", user="alice") is not None
    with client.session_transaction(base_url=BASE_URL) as session:
        assert "_oauthclient_pending" not in session


@pytest.mark.parametrize("action", ["link", "unlink"])
def test_link_and_unlink_are_post_only_and_need_a_user(
    site: Site, client: FlaskClient, action: str
) -> None:
    assert client.get(f"/login/second/{action}", base_url=BASE_URL).status_code == 405
    r = client.post(
        f"/login/second/{action}",
        data={"csrf_token": csrf(client)},
        headers={"Accept": "application/json"},
        base_url=BASE_URL,
    )
    assert r.status_code == 401
    assert r.json is not None and r.json["error"] == "user_required"


def test_link_finished_by_another_user_is_refused(
    site: Site, client: FlaskClient
) -> None:
    """Alice starts a link, then the browser's session changes hands (she logs
    out, Bob logs in): the callback must not link Alice's pending account to
    Bob."""
    as_user(client, "alice")
    params = start_link(client)
    as_user(client, "bob")
    r = complete(client, site.idp, params, "second")
    assert r.status_code == 400
    assert "/token" not in site.idp.calls
    assert site.storage.get("second", user="bob") is None
    assert site.storage.get("second", user="alice") is None


def test_unlink_refuses_the_last_way_to_log_in(site: Site, client: FlaskClient) -> None:
    log_in(site, client)  # user-1, through corp only
    r = client.post(
        "/login/corp/unlink", data={"csrf_token": csrf(client)}, base_url=BASE_URL
    )
    assert r.status_code == 409
    assert b"only way to log in" in r.data
    assert site.storage.get("corp", user="user-1") is not None


def test_unlink_with_another_provider_linked(site: Site, client: FlaskClient) -> None:
    log_in(site, client)
    site.idp.sub = "user-1-at-second"
    complete(client, site.idp, start_link(client), "second")
    assert site.storage.linked("second", user="user-1")
    calls = len(site.idp.calls)
    r = client.post(
        "/login/corp/unlink",
        data={"csrf_token": csrf(client), "next": "/accounts"},
        base_url=BASE_URL,
    )
    assert (r.status_code, r.headers["Location"]) == (302, "/accounts")
    assert "/revoke" in site.idp.calls[calls:]  # revoked at the provider
    assert not site.storage.linked("corp", user="user-1")
    # The identity is forgotten: logging in with it again is a stranger's.
    assert site.storage.find_user("corp", Identity(ISSUER, "user-1")) is None
    assert user_of(client) == "user-1"  # still logged in
    # Now "second" is the last one.
    r = client.post(
        "/login/second/unlink", data={"csrf_token": csrf(client)}, base_url=BASE_URL
    )
    assert r.status_code == 409


def test_identity_link_without_a_token_still_counts(
    site: Site, client: FlaskClient
) -> None:
    """After a logout removed its token, a provider still logs the user in: it
    still counts as a way to log in."""
    log_in(site, client)
    site.storage.set("second", {"access_token": "b"}, user="user-1")
    site.storage.delete("corp", user="user-1")  # logout removed the token
    assert site.storage.linked("corp", user="user-1")
    r = client.post(
        "/login/second/unlink", data={"csrf_token": csrf(client)}, base_url=BASE_URL
    )
    assert r.status_code == 302


@pytest.mark.parametrize("has_password", [True, False])
def test_has_other_login_hook(
    site: Site, client: FlaskClient, has_password: bool
) -> None:
    seen: list[t.Any] = []

    @site.oauth.has_other_login
    def other(user: t.Any) -> bool:
        seen.append(user)
        return has_password

    log_in(site, client)
    r = client.post(
        "/login/corp/unlink", data={"csrf_token": csrf(client)}, base_url=BASE_URL
    )
    assert r.status_code == (302 if has_password else 409)
    assert [user.id for user in seen] == ["user-1"]
    assert site.storage.linked("corp", user="user-1") is not has_password


def test_unlinking_what_is_not_linked_changes_nothing(
    site: Site, client: FlaskClient
) -> None:
    as_user(client, "alice")
    r = client.post(
        "/login/second/unlink", data={"csrf_token": csrf(client)}, base_url=BASE_URL
    )
    assert r.status_code == 302


# -- linking by email -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("enabled", "verified", "found"),
    [
        (False, True, False),  # off by default
        (True, True, True),
        (True, "true", False),  # a string is not True
        (True, False, False),
        (True, None, False),
    ],
)
def test_find_user_by_verified_email_is_opt_in(
    enabled: bool, verified: t.Any, found: bool
) -> None:
    site = make_site(OAUTHCLIENT_LINK_BY_VERIFIED_EMAIL=enabled)
    looked_up: list[str] = []

    def by_email(email: str) -> str | None:
        looked_up.append(email)
        return "alice" if email == "alice@example.com" else None

    userinfo = {
        "iss": ISSUER,
        "sub": "new-sub",
        "email": "alice@example.com",
        "email_verified": verified,
    }
    with site.app.test_request_context():
        user = site.oauth.corp.find_user(userinfo, by_email=by_email)
    assert user == ("alice" if found else None)
    assert looked_up == (["alice@example.com"] if found else [])


def test_identity_wins_over_email() -> None:
    site = make_site(OAUTHCLIENT_LINK_BY_VERIFIED_EMAIL=True)
    site.storage.set(
        "corp", {"access_token": "a"}, user="bob", identity=Identity(ISSUER, "s")
    )
    userinfo = {"iss": ISSUER, "sub": "s", "email": "x@y", "email_verified": True}
    with site.app.test_request_context():
        assert site.oauth.corp.find_user(userinfo, by_email=lambda e: "eve") == "bob"


# -- in the database ------------------------------------------------------------------


def test_linking_with_sqlalchemy_storage(database_url: str) -> None:
    """The same rules on SQLite and PostgreSQL: the identity constraint of the
    token table backs the 409."""
    env = make_env(database_url, uuid.uuid4().hex[:12])
    env.app.config.update(PREFERRED_URL_SCHEME="https", SECRET_KEY="k")
    oauth = OAuth()
    for name in ("corp", "second"):
        oauth.register(
            name,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
            scope=["openid"],
        )
    oauth.init_app(env.app, storage=env.storage)
    idp = FakeIdP()
    plug(env.app, idp, "corp")
    plug(env.app, idp, "second")

    @env.app.post("/as/<int:user_id>")
    def as_db_user(user_id: int) -> str:
        login_user(env.db.session.get(env.User, user_id))
        return "ok"

    @env.app.get("/")
    def index() -> str:
        return render_template_string("{{ oauthclient_csrf_token() }}")

    # Requests run outside the test's app context: Flask would reuse it, and with
    # it Flask-Login's user cached on g.
    with env.app.app_context():
        env.db.create_all()
        alice, bob = (u.id for u in add_users(env, "alice", "bob"))
    try:
        client = env.app.test_client()
        as_user(client, str(alice))
        idp.sub = "alice-sub"
        r = complete(client, idp, start_link(client, "corp"), "corp")
        assert r.status_code == 302
        other = env.app.test_client()
        as_user(other, str(bob))
        r = complete(other, idp, start_link(other, "corp"), "corp")
        assert r.status_code == 409
        with env.app.app_context():
            assert (
                env.storage.get("corp", user=env.db.session.get(env.User, bob)) is None
            )
            found = env.storage.find_user("corp", Identity(ISSUER, "alice-sub"))
            assert found is not None and found.id == alice
        # Alice can't unlink her only provider; with a second one she can.
        r = client.post(
            "/login/corp/unlink", data={"csrf_token": csrf(client)}, base_url=BASE_URL
        )
        assert r.status_code == 409
        idp.sub = "alice-second"
        complete(client, idp, start_link(client, "second"), "second")
        r = client.post(
            "/login/corp/unlink", data={"csrf_token": csrf(client)}, base_url=BASE_URL
        )
        assert r.status_code == 302
        with env.app.app_context():
            user = env.db.session.get(env.User, alice)
            assert env.storage.find_user("corp", Identity(ISSUER, "alice-sub")) is None
            assert not env.storage.linked("corp", user=user)
            assert env.storage.linked("second", user=user)
    finally:
        with created(env):
            pass  # drops the tables
