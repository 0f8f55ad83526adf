"""A login whose ``on_login`` works with ``db.session`` and leaves it uncommitted:
the natural ``db.session.add(user); db.session.flush()`` (to get the new user's id),
or a returning user's profile changed and flushed. The same handler works on SQLite,
PostgreSQL and MariaDB: the token is written in the session's transaction and
committed with it, so the user, their changes and their token persist together (or,
when the login fails, none of them)."""

from __future__ import annotations

import typing as t
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from helpers.fakes import CLIENT_ID
from helpers.fakes import CLIENT_SECRET
from helpers.fakes import FakeIdP
from helpers.fakes import ISSUER
from helpers.hardening import complete
from helpers.hardening import plug
from helpers.hardening import start_login
from helpers.hardening import user_of
from test_sqla import created
from test_sqla import Env
from test_sqla import make_env
from test_sqla import rows
from test_sqla import token

from flask_oauthclient import OAuth
from flask_oauthclient.errors import StorageError
from flask_oauthclient.tokens import Identity

#: What ``on_login`` does with the app's session.
Handler = t.Callable[["Site", t.Any, dict[str, t.Any]], t.Any]


@dataclass
class Site:
    env: Env
    idp: FakeIdP
    oauth: OAuth
    #: What on_login does (changeable between logins).
    handler: Handler
    #: Each login's outcome as on_login saw it: the user's id after its work.
    seen: list[t.Any] = field(default_factory=list)

    def client(self) -> FlaskClient:
        return self.env.app.test_client()

    def log_in(self, client: FlaskClient, sub: str) -> t.Any:
        self.idp.sub = sub
        return complete(client, self.idp, start_login(client))

    def users(self) -> dict[int, str]:
        """The user table as committed, read apart from any session."""
        table = self.env.User.__table__
        with self.env.app.app_context(), self.env.db.engine.connect() as conn:
            return dict(conn.execute(sa.select(table.c.id, table.c.name)).all())

    def tokens(self) -> dict[int, t.Any]:
        """user id → (subject, access token), as committed."""
        with self.env.app.app_context():
            return {
                r["user_id"]: (r["subject"], (r["token"] or {}).get("access_token"))
                for r in rows(self.env)
            }


def find_or_create_flushed(site: Site, provider: t.Any, userinfo: dict[str, t.Any]):
    """The natural handler: a new user is added and flushed (for its id), never
    committed; a returning user's name follows the provider's."""
    db, User = site.env.db, site.env.User
    user = provider.find_user(userinfo)
    name = userinfo.get("name") or userinfo["sub"]
    if user is None:
        user = User(name=name)
        db.session.add(user)
    else:
        user.name = name
    db.session.flush()
    site.seen.append(user.id)
    return user


@contextmanager
def login_site(url: str, handler: Handler = find_or_create_flushed) -> Iterator[Site]:
    """An app on ``url`` with the FakeIdP as provider ``corp`` and ``handler`` as
    ``on_login``. Requests run outside any app context of the test's (Flask would
    reuse it, with Flask-Login's user cached on g)."""
    env = make_env(url, uuid.uuid4().hex[:12])
    env.app.config.update(PREFERRED_URL_SCHEME="https")
    oauth = OAuth()
    oauth.register(
        "corp",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
        scope=["openid", "profile"],
    )
    idp = FakeIdP()
    site = Site(env, idp, oauth, handler)

    @oauth.on_login
    def on_login(provider: t.Any, token: t.Any, userinfo: dict[str, t.Any]) -> t.Any:
        return site.handler(site, provider, userinfo)

    oauth.init_app(env.app, storage=env.storage)
    plug(env.app, idp)
    with env.app.app_context():
        env.db.create_all()
    try:
        yield site
    finally:
        with created(env):
            pass  # drops the tables, disposes of the engines


def test_new_user_added_and_flushed_is_committed_with_the_token(
    database_url: str,
) -> None:
    with login_site(database_url) as site:
        client = site.client()
        r = site.log_in(client, "alice-sub")
        assert r.status_code == 302, r.get_data(as_text=True)[:500]
        [user_id] = site.seen
        assert user_of(client) == str(user_id)
        assert site.users() == {user_id: "alice-sub"}
        assert site.tokens() == {user_id: ("alice-sub", "access-1")}
        # The next login finds that user by its identity: no second user.
        other = site.client()
        r = site.log_in(other, "alice-sub")
        assert r.status_code == 302, r.get_data(as_text=True)[:500]
        assert site.seen == [user_id, user_id]
        assert user_of(other) == str(user_id)
        assert site.users() == {user_id: "alice-sub"}
        assert site.tokens() == {user_id: ("alice-sub", "access-2")}


def test_returning_user_keeps_what_the_handler_changed(database_url: str) -> None:
    with login_site(database_url) as site:
        r = site.log_in(site.client(), "bob-sub")
        assert r.status_code == 302, r.get_data(as_text=True)[:500]
        [bob] = site.seen
        site.idp.id_token_claims["name"] = "Bob Builder"
        client = site.client()
        r = site.log_in(client, "bob-sub")
        assert r.status_code == 302, r.get_data(as_text=True)[:500]
        assert user_of(client) == str(bob)
        assert site.users() == {bob: "Bob Builder"}  # the flushed change survived
        assert site.tokens() == {bob: ("bob-sub", "access-2")}


def create_pending(site: Site, provider: t.Any, userinfo: dict[str, t.Any]) -> t.Any:
    """Added, not even flushed: the storage flushes it to learn its id."""
    user = provider.find_user(userinfo)
    if user is None:
        user = site.env.User(name=userinfo["sub"])
        site.env.db.session.add(user)
    return user


def rename_unflushed(site: Site, provider: t.Any, userinfo: dict[str, t.Any]) -> t.Any:
    user = provider.find_user(userinfo)
    user.name = "renamed"
    return user


def test_pending_user_and_unflushed_change(database_url: str) -> None:
    """No flush either: the new user is flushed and committed with the token; a
    change made to a returning user is committed too."""
    with login_site(database_url, create_pending) as site:
        client = site.client()
        r = site.log_in(client, "carol-sub")
        assert r.status_code == 302, r.get_data(as_text=True)[:500]
        [(carol, name)] = site.users().items()
        assert name == "carol-sub"
        assert user_of(client) == str(carol)
        assert site.tokens() == {carol: ("carol-sub", "access-1")}
    with login_site(database_url, create_pending) as site:
        site.log_in(site.client(), "dave-sub")
        [dave] = site.users()
        site.handler = rename_unflushed
        r = site.log_in(site.client(), "dave-sub")
        assert r.status_code == 302, r.get_data(as_text=True)[:500]
        assert site.users() == {dave: "renamed"}


def create_always(site: Site, provider: t.Any, userinfo: dict[str, t.Any]) -> t.Any:
    """A handler that never looks the user up: a second login with the same
    identity creates a second user, whose token the identity constraint refuses."""
    user = site.env.User(name=f"user-{len(site.seen)}")
    site.env.db.session.add(user)
    site.env.db.session.flush()
    site.seen.append(user.id)
    return user


def test_a_refused_token_leaves_no_user_behind(database_url: str) -> None:
    """The token and the user are one transaction: when the token can't be stored
    (the identity belongs to another user: 409), the new user is not committed."""
    with login_site(database_url, create_always) as site:
        r = site.log_in(site.client(), "erin-sub")
        assert r.status_code == 302, r.get_data(as_text=True)[:500]
        [erin] = site.seen
        client = site.client()
        r = site.log_in(client, "erin-sub")
        assert r.status_code == 409, r.get_data(as_text=True)[:500]
        assert user_of(client) is None
        assert site.users() == {erin: "user-0"}
        assert site.tokens() == {erin: ("erin-sub", "access-1")}


def test_a_database_failure_is_a_storage_error(database_url: str) -> None:
    """The token insert fails in the database: 503 (a storage error, not the
    provider's), nobody logged in, and the new user is not committed either."""
    with login_site(database_url) as site:
        table = site.env.OAuthToken.__table__.name

        def sabotage(
            conn: t.Any, cursor: t.Any, statement: str, *args: t.Any
        ) -> tuple[str, t.Any]:
            if statement.lstrip().upper().startswith(("INSERT", "UPDATE")) and (
                table in statement
            ):
                statement = "INSERT INTO no_such_table_for_this_test VALUES (1)"
            return statement, args[0]

        client = site.client()
        params = start_login(client)
        site.idp.sub = "frank-sub"
        sa.event.listen(sa.Engine, "before_cursor_execute", sabotage, retval=True)
        try:
            r = complete(client, site.idp, params)
        finally:
            sa.event.remove(sa.Engine, "before_cursor_execute", sabotage)
        assert r.status_code == 503, r.get_data(as_text=True)[:500]
        assert b"temporarily unavailable" in r.data
        assert b"Provider" not in r.data
        assert user_of(client) is None
        assert site.users() == {}
        assert site.tokens() == {}


# -- the storage on its own -----------------------------------------------------------


def test_set_for_a_user_not_yet_committed(database_url: str) -> None:
    """``set()`` given a user that only exists in the session's transaction writes
    the token in that transaction and commits both."""
    env = make_env(database_url, uuid.uuid4().hex[:12])
    identity = Identity(ISSUER, "sub-1")
    with created(env):
        user = env.User(name="new")
        env.db.session.add(user)
        env.db.session.flush()
        env.storage.set("corp", token("a1"), user=user, identity=identity)
        assert not env.db.session.new and not env.db.session.dirty
        user_id = user.id
        env.db.session.remove()
        with env.db.engine.connect() as conn:
            names = conn.execute(sa.select(env.User.__table__.c.name)).scalars()
            assert list(names) == ["new"]
        assert [(r["user_id"], r["token"]) for r in rows(env)] == [
            (user_id, token("a1"))
        ]
        assert env.storage.get("corp", user=env.db.session.get(env.User, user_id)) == (
            token("a1")
        )


def test_set_for_a_pending_user_that_cannot_be_flushed(database_url: str) -> None:
    """The flush the storage makes for the user's id fails (a NOT NULL column left
    empty): a StorageError, and the session rolled back, not left half-flushed."""
    env = make_env(database_url, uuid.uuid4().hex[:12])
    with created(env):
        user = env.User(name=None)
        env.db.session.add(user)
        with pytest.raises(StorageError):
            env.storage.set("corp", token("a1"), user=user)
        assert not env.db.session().in_transaction()
        assert rows(env) == []
