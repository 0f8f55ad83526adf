"""SQLAlchemyStorage and OAuthTokenMixin, on SQLite (a file), PostgreSQL and MariaDB."""

from __future__ import annotations

import importlib.metadata
import multiprocessing
import sys
import threading
import time
import typing as t
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone

import pytest
import sqlalchemy as sa
from flask import Flask
from flask import g
from flask_login import current_user
from flask_login import login_user
from flask_login import LoginManager
from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import orm as sa_orm

from flask_oauthclient import IdentityInUse
from flask_oauthclient import UserRequired
from flask_oauthclient.errors import ConfigurationError
from flask_oauthclient.errors import StorageError
from flask_oauthclient.sqla import OAuthTokenMixin
from flask_oauthclient.sqla import SQLAlchemyStorage
from flask_oauthclient.tokens import Identity


@dataclass
class Env:
    app: Flask
    db: SQLAlchemy
    User: t.Any
    OAuthToken: t.Any
    storage: SQLAlchemyStorage


def make_env(
    url: str,
    suffix: str,
    *,
    relationship: bool = True,
    engine_options: dict[str, t.Any] | None = None,
) -> Env:
    """A tiny app: users, their tokens, Flask-Login. Table names carry ``suffix`` so
    that runs sharing a PostgreSQL database don't collide."""
    app = Flask(f"test_sqla_{suffix}")
    app.config.update(
        TESTING=True,
        SECRET_KEY="test secret key",
        SQLALCHEMY_DATABASE_URI=url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options or {},
    )
    db = SQLAlchemy()

    class User(db.Model, UserMixin):  # type: ignore[name-defined,misc]
        __tablename__ = f"user_{suffix}"
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(80), nullable=False)

    class OAuthToken(OAuthTokenMixin, db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = f"oauth_token_{suffix}"
        user_id = db.Column(db.ForeignKey(User.id), nullable=False)
        if relationship:
            user = db.relationship(User)

    db.init_app(app)
    login_manager = LoginManager(app)

    @login_manager.user_loader  # type: ignore[untyped-decorator]
    def load_user(user_id: str) -> t.Any:
        return db.session.get(User, int(user_id))

    storage = SQLAlchemyStorage(OAuthToken, db.session, user=lambda: current_user)
    return Env(app, db, User, OAuthToken, storage)


@contextmanager
def created(env: Env) -> t.Iterator[Env]:
    with env.app.app_context():
        env.db.create_all()
        try:
            yield env
        finally:
            env.db.session.remove()
            env.db.drop_all()
            for engine in env.db.engines.values():
                engine.dispose()


@pytest.fixture
def env(database_url: str) -> t.Iterator[Env]:
    with created(make_env(database_url, uuid.uuid4().hex[:12])) as env:
        yield env


def add_users(env: Env, *names: str) -> list[t.Any]:
    users = [env.User(name=name) for name in names]
    env.db.session.add_all(users)
    env.db.session.commit()
    return users


@contextmanager
def logged_in(env: Env, user: t.Any | None) -> t.Iterator[None]:
    with env.app.test_request_context():
        # Flask-Login caches the user on g, which lives in the app context the
        # fixture keeps for the whole test: start each "request" afresh.
        g.pop("_login_user", None)
        if user is not None:
            login_user(user)
        try:
            yield
        finally:
            g.pop("_login_user", None)


def rows(env: Env) -> list[t.Any]:
    """The token table as committed, read apart from the test's session."""
    table = env.OAuthToken.__table__
    with env.db.engine.connect() as conn:
        return list(conn.execute(sa.select(table).order_by(table.c.id)).mappings())


def token(access: str, **extra: t.Any) -> dict[str, t.Any]:
    return {"access_token": access, "token_type": "Bearer", **extra}


# -- get, set, delete -----------------------------------------------------------------


def test_get_set_delete(env: Env) -> None:
    (alice,) = add_users(env, "alice")
    with logged_in(env, alice):
        assert env.storage.get("google") is None
        env.storage.set("google", token("a1"))
        assert env.storage.get("google") == token("a1")
        env.storage.delete("google")
        assert env.storage.get("google") is None
        env.storage.delete("google")  # nothing to delete: no error
    # The row stays as the identity link, without a token.
    assert [(r["provider"], r["token"], r["expires_at"]) for r in rows(env)] == [
        ("google", None, None)
    ]
    with logged_in(env, alice):
        env.storage.unlink("google")
        env.storage.unlink("google")  # nothing to unlink: no error
    assert rows(env) == []


def test_upsert_keeps_one_row_per_provider_and_user(env: Env) -> None:
    (alice,) = add_users(env, "alice")
    env.storage.set("google", token("a1"), user=alice)
    [first] = rows(env)
    time.sleep(0.01)
    env.storage.set("google", token("a2", refresh_token="r2"), user=alice)
    env.storage.set("github", token("g1"), user=alice)
    google, github = rows(env)
    assert google["id"] == first["id"]
    assert google["token"] == token("a2", refresh_token="r2")
    assert google["created_at"] == first["created_at"]
    assert google["updated_at"] > first["updated_at"]
    assert github["provider"] == "github"
    assert env.storage.get("google", user=alice) == token("a2", refresh_token="r2")
    assert env.storage.get("github", user=alice) == token("g1")


def test_users_never_see_each_other(env: Env) -> None:
    alice, bob = add_users(env, "alice", "bob")
    with logged_in(env, alice):
        env.storage.set("google", token("alice"))
    with logged_in(env, bob):
        assert env.storage.get("google") is None
        env.storage.set("google", token("bob"))
        assert env.storage.get("google") == token("bob")
        env.storage.delete("google")
    with logged_in(env, alice):
        assert env.storage.get("google") == token("alice")
    assert env.storage.get("google", user=bob) is None
    tokens = {row["user_id"]: row["token"] for row in rows(env)}
    assert tokens == {alice.id: token("alice"), bob.id: None}


def test_anonymous_user(env: Env) -> None:
    """No user: nothing to read, nothing stored, and above all nothing deleted (the
    Flask-Dance storage deleted every user's token for the provider)."""
    alice, bob = add_users(env, "alice", "bob")
    env.storage.set("google", token("alice"), user=alice)
    env.storage.set("google", token("bob"), user=bob)
    with logged_in(env, None):
        assert not current_user.is_authenticated
        assert env.storage.get("google") is None
        assert env.storage.user_key() is None
        with pytest.raises(UserRequired) as info:
            env.storage.set("google", token("anon"))
        assert info.value.status_code == 401
        env.storage.delete("google")
        with env.storage.lock("google") as locked:
            assert locked.token is None
            locked.delete()
            with pytest.raises(UserRequired):
                locked.save(token("anon"))
        lenient = SQLAlchemyStorage(
            env.OAuthToken, env.db.session, anonymous_ok=True
        )  # Flask-Login's current_user by default
        assert lenient.get("google") is None
        lenient.set("google", token("anon"))
        lenient.delete("google")
    assert env.storage.get("google", user=None) is None
    env.storage.delete("google", user=None)
    assert [row["token"] for row in rows(env)] == [token("alice"), token("bob")]


def test_user_id_callable(env: Env) -> None:
    (alice,) = add_users(env, "alice")
    env.storage.set("google", token("a1"), user=alice)
    with logged_in(env, alice):
        by_id = SQLAlchemyStorage(
            env.OAuthToken, env.db.session, user_id=lambda: current_user.get_id()
        )
        assert by_id.user_key() == alice.id  # "1" from Flask-Login, coerced
        assert by_id.get("google") == token("a1")
        by_id.set("google", token("a2"))
    with logged_in(env, None):
        assert by_id.get("google") is None
    assert len(rows(env)) == 1
    assert env.storage.get("google", user=alice) == token("a2")


# -- durability and the view's transaction --------------------------------------------


def test_write_is_independent_of_the_view_transaction(env: Env) -> None:
    (alice,) = add_users(env, "alice")
    with logged_in(env, alice):
        env.db.session.add(env.User(name="pending"))
        if env.db.engine.dialect.name != "sqlite":
            # On SQLite a flush would take the database's write lock (see
            # test_sqlite_refuses_to_wait_for_its_own_session).
            env.db.session.flush()
        env.storage.set("google", token("a1"))
        env.db.session.rollback()  # the view fails after storing the token
        assert env.storage.get("google") == token("a1")
        env.storage.delete("google")
    with env.db.engine.connect() as conn:
        names = conn.execute(sa.select(env.User.__table__.c.name)).scalars().all()
    assert names == ["alice"]  # the view's pending user was not committed
    assert [row["token"] for row in rows(env)] == [None]


def test_token_survives_the_end_of_the_request(env: Env) -> None:
    (alice,) = add_users(env, "alice")
    with logged_in(env, alice):
        env.storage.set("google", token("a1"))
    env.db.session.remove()
    assert env.storage.get("google", user=alice) == token("a1")


def test_session_does_not_serve_a_stale_row(database_url: str) -> None:
    """The session's copies of a row are expired by a write. (On MySQL and MariaDB
    the app's session reads them again fresh only at READ COMMITTED, as
    docs/storage.rst recommends: at their default, REPEATABLE READ, a transaction
    keeps reading the snapshot of its first read.)"""
    options = {}
    if database_url.startswith(("mysql", "mariadb")):
        options["isolation_level"] = "READ COMMITTED"
    env = make_env(database_url, uuid.uuid4().hex[:12], engine_options=options)
    with created(env):
        _session_does_not_serve_a_stale_row(env)


def _session_does_not_serve_a_stale_row(env: Env) -> None:
    (alice,) = add_users(env, "alice")
    env.storage.set("google", token("a1"), user=alice)
    row = env.db.session.execute(sa.select(env.OAuthToken)).scalar_one()
    assert row.token == token("a1")
    env.storage.set("google", token("a2"), user=alice)
    assert row.token == token("a2")
    env.storage.delete("google", user=alice)
    assert row.token is None
    env.storage.unlink("google", user=alice)
    with pytest.raises(sa_orm.exc.ObjectDeletedError):
        row.token  # noqa: B018


def test_sqlite_refuses_to_wait_for_its_own_session(tmp_path: t.Any) -> None:
    """Uncommitted writes of the session hold SQLite's write lock: a token write
    from the same thread would wait for ever; it fails at once instead."""
    url = f"sqlite:///{tmp_path / 'test.sqlite'}"
    with created(make_env(url, "x")) as env:
        (alice,) = add_users(env, "alice")
        env.db.session.add(env.User(name="bob"))
        env.db.session.flush()
        start = time.monotonic()
        with pytest.raises(ConfigurationError, match="commit"):
            env.storage.set("google", token("a1"), user=alice)
        with pytest.raises(ConfigurationError, match="commit"):
            with env.storage.lock("google", user=alice):
                pass
        assert time.monotonic() - start < 1
        env.db.session.commit()
        env.storage.set("google", token("a1"), user=alice)


def test_in_memory_sqlite() -> None:
    """One connection shared by everyone: writes commit it, locks stay in memory."""
    with created(make_env("sqlite://", "memory")) as env:
        (alice,) = add_users(env, "alice")
        with logged_in(env, alice):
            env.storage.set("google", token("a1"))
            assert env.storage.get("google") == token("a1")
            with env.storage.lock("google") as locked:
                assert locked.token == token("a1")
                locked.save(token("a2"))
        env.db.session.remove()
        assert env.storage.get("google", user=alice) == token("a2")
        env.storage.delete("google", user=alice)
        env.db.session.remove()
        assert env.storage.get("google", user=alice) is None


# -- columns, constraints, identities -------------------------------------------------


def test_identity_is_unique(env: Env) -> None:
    alice, bob = add_users(env, "alice", "bob")
    identity = Identity("https://idp.example", "sub-1")
    env.storage.set("corp", token("alice"), user=alice, identity=identity)
    with pytest.raises(IdentityInUse) as info:
        env.storage.set("corp", token("bob"), user=bob, identity=identity)
    assert info.value.status_code == 409
    assert "bob" not in str(info.value)
    assert env.storage.get("corp", user=bob) is None
    # The same identity under another provider name, and no identity, are fine.
    env.storage.set("other", token("bob"), user=bob, identity=identity)
    env.storage.set("corp", token("bob"), user=bob)
    # A later write without identity keeps the identity stored.
    env.storage.set("corp", token("alice2"), user=alice)
    [corp_alice] = [r for r in rows(env) if r["user_id"] == alice.id]
    assert (corp_alice["issuer"], corp_alice["subject"]) == (
        "https://idp.example",
        "sub-1",
    )
    assert corp_alice["token"] == token("alice2")
    # ... and the database itself refuses a second row with that identity.
    table = env.OAuthToken.__table__
    with pytest.raises(sa.exc.IntegrityError):
        with env.db.engine.begin() as conn:
            conn.execute(
                table.update()
                .where(table.c.user_id == bob.id, table.c.provider == "corp")
                .values(issuer="https://idp.example", subject="sub-1")
            )


def test_unique_per_provider_and_user_in_the_schema(env: Env) -> None:
    (alice,) = add_users(env, "alice")
    table = env.OAuthToken.__table__
    values = {"provider": "google", "user_id": alice.id, "token": {}}
    now = datetime.now(timezone.utc)
    values.update(created_at=now, updated_at=now)
    with env.db.engine.begin() as conn:
        conn.execute(table.insert().values(values))
    with pytest.raises(sa.exc.IntegrityError):
        with env.db.engine.begin() as conn:
            conn.execute(table.insert().values(values))


def test_expires_at_column(env: Env) -> None:
    (alice,) = add_users(env, "alice")
    env.storage.set("a", token("1", expires_at=1_900_000_000.5), user=alice)
    env.storage.set("b", token("2"), user=alice)
    before = time.time()
    env.storage.set("c", token("3", expires_in=3600), user=alice)
    env.storage.set("d", token("4", expires_at="garbage"), user=alice)
    by_provider = {row["provider"]: row["expires_at"] for row in rows(env)}

    def epoch(value: datetime) -> float:
        if value.tzinfo is None:  # SQLite keeps no time zone: the value is UTC
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()

    assert epoch(by_provider["a"]) == 1_900_000_000.5
    assert by_provider["b"] is None
    assert before + 3600 <= epoch(by_provider["c"]) <= time.time() + 3600
    assert by_provider["d"] is None
    env.storage.set("a", token("1"), user=alice)
    assert {r["provider"]: r["expires_at"] for r in rows(env)}["a"] is None
    index_columns = {tuple(i.columns.keys()) for i in env.OAuthToken.__table__.indexes}
    assert ("expires_at",) in index_columns


@pytest.mark.parametrize("relationship", [True, False])
def test_find_user(database_url: str, relationship: bool) -> None:
    suffix = uuid.uuid4().hex[:12]
    with created(make_env(database_url, suffix, relationship=relationship)) as env:
        alice, bob = add_users(env, "alice", "bob")
        identity = Identity("https://idp.example", "sub-a")
        env.storage.set("corp", token("a"), user=alice, identity=identity)
        env.storage.set("corp", token("b"), user=bob)
        assert env.storage.find_user("corp", identity) is alice
        env.db.session.expunge_all()
        found = env.storage.find_user("corp", identity)
        assert found is not None
        assert found.name == "alice"
        assert found in env.db.session
        assert (
            env.storage.find_user("corp", Identity("https://idp.example", "x")) is None
        )
        assert env.storage.find_user("other", identity) is None
        assert env.storage.find_user("corp", Identity("https://evil", "sub-a")) is None


def test_repr_hides_the_token(env: Env) -> None:
    (alice,) = add_users(env, "alice")
    env.storage.set("google", token("secret-access-token"), user=alice)
    row = env.db.session.execute(sa.select(env.OAuthToken)).scalar_one()
    assert "secret" not in repr(row)
    assert "'google'" in repr(row)


def test_declarative_base_model_class(database_url: str) -> None:
    """Flask-SQLAlchemy 3.1's ``model_class=DeclarativeBase`` works as well."""
    if _version("flask-sqlalchemy") < (3, 1):
        pytest.skip("model_class=DeclarativeBase needs Flask-SQLAlchemy 3.1")

    class Base(sa_orm.DeclarativeBase):
        pass

    suffix = uuid.uuid4().hex[:12]
    db = SQLAlchemy(model_class=Base)

    class User(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = f"user_{suffix}"
        id: sa_orm.Mapped[int] = sa_orm.mapped_column(primary_key=True)

    class OAuthToken(OAuthTokenMixin, db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = f"oauth_token_{suffix}"
        account_id: sa_orm.Mapped[int] = sa_orm.mapped_column(
            sa.ForeignKey(User.id), nullable=False
        )
        __oauth_user_column__ = "account_id"

    app = Flask("test_declarative")
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)
    storage = SQLAlchemyStorage(OAuthToken, db.session, user=lambda: None)
    with app.app_context():
        db.create_all()
        try:
            user = User()
            db.session.add(user)
            db.session.commit()
            identity = Identity("iss", "sub")
            storage.set("p", token("t"), user=user, identity=identity)
            storage.set("p", token("u"), user=user)
            assert storage.get("p", user=user) == token("u")
            assert storage.find_user("p", identity) is user
            uniques = {
                tuple(c.columns.keys())
                for c in OAuthToken.__table__.constraints
                if isinstance(c, sa.UniqueConstraint)
            }
            assert uniques == {
                ("provider", "account_id"),
                ("provider", "issuer", "subject"),
            }
        finally:
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


def _version(distribution: str) -> tuple[int, ...]:
    release = importlib.metadata.version(distribution).split(".")[:2]
    return tuple(int(part) for part in release)


def test_configuration_errors() -> None:
    db = SQLAlchemy()

    with pytest.raises(ConfigurationError, match="no 'user_id' column"):

        class Bare(OAuthTokenMixin, db.Model):  # type: ignore[name-defined,misc]
            __tablename__ = "bare"

    with pytest.raises(ConfigurationError, match="not a mapped model"):
        SQLAlchemyStorage(object, db.session)

    class User(db.Model):  # type: ignore[name-defined,misc]
        id = db.Column(db.Integer, primary_key=True)

    class NoConstraint(OAuthTokenMixin, db.Model):  # type: ignore[name-defined,misc]
        __table_args__ = ()
        user_id = db.Column(db.ForeignKey(User.id), nullable=False)

    with pytest.raises(ConfigurationError, match="unique constraint"):
        SQLAlchemyStorage(NoConstraint, db.session)

    class Token(OAuthTokenMixin, db.Model):  # type: ignore[name-defined,misc]
        user_id = db.Column(db.ForeignKey(User.id), nullable=False)

    with pytest.raises(ConfigurationError, match="not both"):
        SQLAlchemyStorage(Token, db.session, user=lambda: None, user_id=lambda: None)


# -- database failures ----------------------------------------------------------------


def test_storage_error_when_the_table_is_gone(env: Env) -> None:
    (alice,) = add_users(env, "alice")
    env.storage.set("google", token("a1"), user=alice)
    env.OAuthToken.__table__.drop(env.db.engine)
    for call in (
        lambda: env.storage.set("google", token("top-secret"), user=alice),
        lambda: env.storage.get("google", user=alice),
        lambda: env.storage.delete("google", user=alice),
        lambda: env.storage.lock("google", user=alice).__enter__(),
    ):
        with pytest.raises(StorageError) as info:
            call()
        assert info.value.status_code == 503
        assert "top-secret" not in str(info.value)
        assert info.value.__suppress_context__  # the statement's parameters


def test_storage_error_when_the_database_is_unreachable(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        bad_url = "sqlite:////nonexistent-directory/test.sqlite"
    else:  # the same server, at a port where nothing listens
        bad_url = sa.make_url(database_url).set(port=1).render_as_string(False)
    env = make_env(bad_url, "unreachable")
    user = env.User(id=1, name="alice")
    with env.app.app_context():
        with pytest.raises(StorageError, match="nothing was written"):
            env.storage.set("google", token("a1"), user=user)
        with pytest.raises(StorageError):
            env.storage.get("google", user=user)
        with pytest.raises(StorageError):
            with env.storage.lock("google", user=user):
                pass
        env.db.engine.dispose()


def test_portable_upsert_path(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dialects without a usable ON CONFLICT (MySQL ...) select, then write."""
    portable = staticmethod(lambda engine: False)
    monkeypatch.setattr(SQLAlchemyStorage, "_native_upsert", portable)
    alice, bob = add_users(env, "alice", "bob")
    identity = Identity("iss", "sub")
    env.storage.set("corp", token("a1"), user=alice, identity=identity)
    env.storage.set("corp", token("a2"), user=alice)
    with pytest.raises(IdentityInUse):
        env.storage.set("corp", token("b1"), user=bob, identity=identity)
    with env.storage.lock("corp", user=alice) as locked:
        locked.save(token("a3"))
    assert [(r["user_id"], r["token"]) for r in rows(env)] == [(alice.id, token("a3"))]


# -- the storage's own engine ---------------------------------------------------------


def test_the_storage_pools_connections_of_its_own(env: Env) -> None:
    """Writes and locks run on the storage's engine, whose small pool reuses its
    connections, with their wait set once per connection; the app's engine sees
    none of those statements, and disposing of it disposes of the storage's."""
    (alice,) = add_users(env, "alice")
    own = env.storage._engine()
    assert own is not env.db.engine
    connects: list[object] = []
    own_statements: list[str] = []
    app_statements: list[str] = []

    def on_own(conn: t.Any, cursor: t.Any, statement: str, *args: t.Any) -> None:
        own_statements.append(statement)

    def on_app(conn: t.Any, cursor: t.Any, statement: str, *args: t.Any) -> None:
        app_statements.append(statement)

    sa.event.listen(own, "connect", lambda *args: connects.append(args))
    sa.event.listen(own, "before_cursor_execute", on_own)
    sa.event.listen(env.db.engine, "before_cursor_execute", on_app)
    try:
        for i in range(3):
            env.storage.set("google", token(f"a{i}"), user=alice)
            with env.storage.lock("google", user=alice) as locked:
                locked.save(token(f"b{i}"))
            env.storage.delete("google", user=alice)
    finally:
        sa.event.remove(env.db.engine, "before_cursor_execute", on_app)
    assert len(connects) <= 1  # one connection, reused
    settings = [
        s
        for s in own_statements
        if s.startswith(("PRAGMA busy_timeout", "SET SESSION"))
    ]
    assert len(settings) <= 1  # made once per connection (PostgreSQL: SET LOCAL)
    table = env.OAuthToken.__table__.name
    assert [s for s in own_statements if s.startswith("INSERT") and table in s]
    assert not [s for s in app_statements if table in s and "SELECT" not in s]
    assert own.pool.checkedout() == 0
    env.db.engine.dispose()
    assert own.pool.checkedin() == 0  # disposed of along with the app's


@pytest.mark.parametrize("stored", [True, False], ids=["row", "no-row"])
def test_lock_gives_up_after_lock_timeout(env: Env, stored: bool) -> None:
    """Another holder keeps the token locked: lock() (and, when the row exists, a
    plain write) waits lock_timeout, then fails with StorageError, nothing
    written."""
    (alice,) = add_users(env, "alice")
    if stored:
        env.storage.set("google", token("old"), user=alice)
    impatient = SQLAlchemyStorage(
        env.OAuthToken, env.db.session, user=lambda: None, lock_timeout=0.5
    )
    holding = threading.Event()
    done = threading.Event()

    def holder() -> None:
        with env.app.app_context(), env.storage.lock("google", user=alice):
            holding.set()
            done.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert holding.wait(5)
        start = time.monotonic()
        with pytest.raises(StorageError):
            with impatient.lock("google", user=alice):
                pass  # pragma: no cover - never reached
        if stored:
            with pytest.raises(StorageError):
                impatient.set("google", token("new"), user=alice)
        # Whole seconds on MariaDB, rounded up.
        assert time.monotonic() - start < 4
    finally:
        done.set()
        thread.join(10)
    expected = token("old") if stored else None
    assert env.storage.get("google", user=alice) == expected
    with impatient.lock("google", user=alice) as locked:  # free again
        assert locked.token == expected


# -- lock(): single flight ------------------------------------------------------------


def test_exception_in_lock_leaves_the_token(env: Env) -> None:
    (alice,) = add_users(env, "alice")
    env.storage.set("google", token("old"), user=alice)
    with pytest.raises(RuntimeError):
        with env.storage.lock("google", user=alice) as locked:
            assert locked.token == token("old")
            raise RuntimeError("the refresh failed")
    assert env.storage.get("google", user=alice) == token("old")
    # A saved token is durable at once: a later error doesn't take it back (the
    # provider may have rotated the refresh token).
    with pytest.raises(RuntimeError):
        with env.storage.lock("google", user=alice) as locked:
            locked.save(token("new"))
            raise RuntimeError("after the save")
    assert env.storage.get("google", user=alice) == token("new")
    # Another write in the same block takes the lock again.
    with env.storage.lock("google", user=alice) as locked:
        locked.save(token("newer"))
        locked.save(token("newest"))
    assert env.storage.get("google", user=alice) == token("newest")
    with env.storage.lock("google", user=alice) as locked:
        locked.delete()
        assert locked.token is None
    assert env.storage.get("google", user=alice) is None
    # The lock was released every time: another thread gets it at once.
    done = threading.Event()

    def other() -> None:
        with env.app.app_context(), env.storage.lock("google", user=alice):
            done.set()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(5)
    assert done.is_set()


def test_writing_past_the_lock_one_holds_fails_at_once(env: Env) -> None:
    """Inside lock(), the thread writes through the LockedToken; a plain write (or
    a nested lock) would wait for the thread's own lock until the timeout."""
    (alice,) = add_users(env, "alice")
    env.storage.set("google", token("old"), user=alice)
    start = time.monotonic()
    with env.storage.lock("google", user=alice) as locked:
        assert env.storage.get("google", user=alice) == token("old")  # reads are fine
        with pytest.raises(RuntimeError, match="LockedToken"):
            env.storage.set("google", token("new"), user=alice)
        with pytest.raises(RuntimeError, match="LockedToken"):
            env.storage.delete("google", user=alice)
        with pytest.raises(RuntimeError, match="LockedToken"):
            with env.storage.lock("google", user=alice):
                pass
        if env.db.engine.dialect.name == "sqlite":
            # SQLite's lock is the database's write lock: no other token either.
            with pytest.raises(RuntimeError, match="SQLite"):
                env.storage.set("github", token("other"), user=alice)
        else:
            env.storage.set("github", token("other"), user=alice)
        locked.save(token("new"))
    assert time.monotonic() - start < 5
    env.storage.set("google", token("newer"), user=alice)  # released
    assert env.storage.get("google", user=alice) == token("newer")


def test_threads_of_a_new_storage_share_one_record_of_held_locks(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record of which thread holds which token lock is made by the first write
    or lock: threads that get there at once must still share one, or a thread
    would not see its own lock and wait on it until the timeout."""
    from flask_oauthclient.sqla import locking

    made = locking.ThreadHolds.__init__

    def slowly(self: locking.ThreadHolds) -> None:
        time.sleep(0.05)  # widen the window between checking and storing
        made(self)

    monkeypatch.setattr(locking.ThreadHolds, "__init__", slowly)
    storage = SQLAlchemyStorage(env.OAuthToken, env.db.session)
    start = threading.Barrier(4)
    seen: list[locking.ThreadHolds] = []

    def first_write() -> None:
        start.wait(5)
        # The object itself, not its id: a discarded one's id may be reused.
        seen.append(storage._holds)

    threads = [threading.Thread(target=first_write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(seen) == 4
    assert all(holds is seen[0] for holds in seen)


def test_lock_makes_plain_writes_wait(env: Env) -> None:
    (alice,) = add_users(env, "alice")
    env.storage.set("google", token("old"), user=alice)
    holding = threading.Event()
    released_at: list[float] = []
    written_at: list[float] = []

    def writer() -> None:
        holding.wait(5)
        with env.app.app_context():
            env.storage.set("google", token("login"), user=alice)
        written_at.append(time.monotonic())

    thread = threading.Thread(target=writer)
    thread.start()
    with env.storage.lock("google", user=alice):
        holding.set()
        time.sleep(0.3)
        released_at.append(time.monotonic())
    thread.join(10)
    assert written_at and written_at[0] >= released_at[0]
    assert env.storage.get("google", user=alice) == token("login")


@pytest.mark.parametrize("initial", ["stale", None])
@pytest.mark.parametrize("one_storage", [True, False], ids=["one", "many"])
def test_lock_single_flight_threads(
    env: Env, initial: str | None, one_storage: bool
) -> None:
    """8 threads find the token stale; exactly one refreshes, the others see its new
    token. With one storage per thread, only the database lock serializes them (and
    with no row yet, only the advisory lock on PostgreSQL)."""
    single_flight_threads(env, initial, one_storage)


def single_flight_threads(
    env: Env, initial: str | None, one_storage: bool, count: int = 8
) -> None:
    (alice,) = add_users(env, "alice")
    if initial is not None:
        env.storage.set("google", token(initial), user=alice)
    barrier = threading.Barrier(count)
    refreshed: list[int] = []
    seen: list[str] = []
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            with env.app.app_context():
                storage = env.storage
                if not one_storage:
                    storage = SQLAlchemyStorage(env.OAuthToken, env.db.session)
                barrier.wait(10)
                with storage.lock("google", user=alice) as locked:
                    if locked.token is None or locked.token["access_token"] == "stale":
                        time.sleep(0.1)  # the round trip to the provider
                        refreshed.append(i)
                        locked.save(token(f"fresh-{i}"))
                    assert locked.token is not None
                    seen.append(locked.token["access_token"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert len(refreshed) == 1
    assert seen == [f"fresh-{refreshed[0]}"] * count
    assert env.storage.get("google", user=alice) == token(f"fresh-{refreshed[0]}")


@pytest.mark.skipif(
    sys.version_info < (3, 12), reason="sqlite3's autocommit attribute is 3.12+"
)
def test_sqlite_pep249_transactions(tmp_path: t.Any) -> None:
    """``connect_args={"autocommit": False}`` keeps a transaction open at all times;
    the storage still takes SQLite's write lock on its own connection."""
    url = f"sqlite:///{tmp_path / 'test.sqlite'}"
    options = {"connect_args": {"autocommit": False}}
    with created(make_env(url, "pep249", engine_options=options)) as env:
        single_flight_threads(env, "stale", one_storage=False, count=4)
        with env.db.engine.connect() as conn:
            dbapi_connection = t.cast(t.Any, conn.connection.dbapi_connection)
            assert dbapi_connection.autocommit is False  # restored
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000


def _refresh_once(env: Env, user: t.Any, name: str) -> list[tuple[str, str]]:
    """Refresh the token if stale, under the lock; report what happened."""
    results = []
    with env.storage.lock("google", user=user) as locked:
        assert locked.token is not None
        if locked.token["access_token"] == "stale":
            time.sleep(0.3)  # the round trip to the provider
            locked.save(token(f"fresh-{name}"))
            results.append(("refreshed", f"fresh-{name}"))
        assert locked.token is not None
        results.append(("seen", locked.token["access_token"]))
    return results


def _refresh_in_another_process(
    url: str, suffix: str, user_id: int, barrier: t.Any, queue: t.Any
) -> None:
    env = make_env(url, suffix)
    with env.app.app_context():
        user = env.db.session.get(env.User, user_id)
        barrier.wait(60)
        for message in _refresh_once(env, user, multiprocessing.current_process().name):
            queue.put(message)
        for engine in env.db.engines.values():
            engine.dispose()


def test_lock_single_flight_processes(database_url: str) -> None:
    """Three processes (this one and two spawned) find the token stale: exactly one
    refreshes."""
    suffix = uuid.uuid4().hex[:12]
    with created(make_env(database_url, suffix)) as env:
        (alice,) = add_users(env, "alice")
        env.storage.set("google", token("stale"), user=alice)
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(3)
        queue = ctx.Queue()
        processes = [
            ctx.Process(
                target=_refresh_in_another_process,
                args=(database_url, suffix, alice.id, barrier, queue),
                name=f"worker-{i}",
            )
            for i in range(2)
        ]
        for process in processes:
            process.start()
        try:
            barrier.wait(60)
            messages = _refresh_once(env, alice, "main")
            while len(messages) < 4:
                messages.append(queue.get(timeout=60))
        finally:
            for process in processes:
                process.join(30)
        assert [p.exitcode for p in processes] == [0, 0]
        refreshed = [value for kind, value in messages if kind == "refreshed"]
        seen = [value for kind, value in messages if kind == "seen"]
        assert len(refreshed) == 1
        assert seen == refreshed * 3
        assert env.storage.get("google", user=alice) == token(refreshed[0])
