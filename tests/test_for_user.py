"""``oauth.<name>.for_user(user)``: a client bound to any user, in a request (for a
user other than the logged-in one), in an app context without a request (a job, a
CLI command) and in threads. Against the development provider over loopback HTTP,
whose ``/api/`` answers whose token it got: every check of "this call carried that
user's token" is made on the provider's side."""

from __future__ import annotations

import threading
import time
import typing as t
from contextlib import contextmanager

import pytest
import requests
import sqlalchemy as sa
from conftest import POSTGRES_URL
from conftest import skip_or_fail
from flask import Flask
from flask import g
from flask import jsonify
from flask import request
from flask_sqlalchemy import SQLAlchemy
from helpers.live_servers import postgres_schema

from flask_oauthclient import ConfigurationError
from flask_oauthclient import MemoryStorage
from flask_oauthclient import OAuth
from flask_oauthclient import ProviderError
from flask_oauthclient import ProviderUnavailable
from flask_oauthclient import ReauthorizationRequired
from flask_oauthclient import SessionStorage
from flask_oauthclient import TokenMissing
from flask_oauthclient.client import UserClient
from flask_oauthclient.signals import token_refreshed
from flask_oauthclient.sqla import OAuthTokenMixin
from flask_oauthclient.sqla import SQLAlchemyStorage
from flask_oauthclient.storage import BaseStorage
from flask_oauthclient.testing import DevProvider

USERS = [f"user{i:02d}" for i in range(12)]


@pytest.fixture(scope="module")
def dev() -> t.Iterator[DevProvider]:
    """Rotating refresh tokens, and a spent one revokes the grant (oidc-provider's
    reuse detection): a refresh made twice, or with another user's refresh token,
    shows up as ``invalid_grant``."""
    provider = DevProvider(revoke_grant_on_reuse=True)
    with provider.serve():
        yield provider


@pytest.fixture(autouse=True)
def _fresh_stats(dev: DevProvider) -> t.Iterator[None]:
    dev.token_delay = 0.0
    dev.reset_stats()
    yield
    dev.token_delay = 0.0


def make_app(
    dev: DevProvider, storage: BaseStorage, **config: t.Any
) -> tuple[Flask, OAuth]:
    oauth = OAuth()
    oauth.register(
        "dev",
        client_id="dev-client",
        client_secret="dev-secret",
        server_metadata_url=dev.metadata_url,
        scope=["openid", "email", "profile", "offline_access"],
        api_base_url=dev.issuer + "/api/",
    )
    app = Flask(__name__)
    app.config.update(
        TESTING=True, SECRET_KEY="test", OAUTHCLIENT_INSECURE_TRANSPORT=True, **config
    )
    oauth.init_app(app, storage=storage)
    return app, oauth


def give_tokens(
    dev: DevProvider, storage: BaseStorage, *users: str, expired: bool = False
) -> dict[str, dict[str, t.Any]]:
    """A token from the provider for each user, stored for that user."""
    tokens = {}
    for user in users:
        token = dev.mint_token(user)
        if expired:
            token["expires_at"] = time.time() - 60
        storage.set("dev", token, user=user)
        tokens[user] = token
    return tokens


def caller(response: requests.Response) -> str:
    """Whose token the provider got."""
    assert response.status_code == 200, response.text
    return t.cast(str, response.json()["sub"])


# -- outside a request: jobs and commands ---------------------------------------------


def test_a_loop_over_users_reading_the_user_from_g_sends_each_users_token(
    dev: DevProvider,
) -> None:
    """Issue 12: a job sets ``g.job_user`` and calls ``oauth.dev.get`` for each user
    in one app context, with a storage whose current user is read from ``g``. Each
    call carries that user's token (it used to carry the first user's)."""
    storage = MemoryStorage(user=lambda: g.job_user)
    app, oauth = make_app(dev, storage)
    give_tokens(dev, storage, *USERS)
    with app.app_context():
        for user in USERS:
            g.job_user = user
            assert caller(oauth.dev.get("whoami")) == user
            assert oauth.dev.token is not None
            assert (
                oauth.dev.token["access_token"]
                == storage.get("dev", user=user)["access_token"]
            )


def test_a_loop_with_for_user_sends_each_users_token(dev: DevProvider) -> None:
    storage = MemoryStorage(user=lambda: None)
    app, oauth = make_app(dev, storage)
    give_tokens(dev, storage, *USERS)
    with app.app_context():
        assert [caller(oauth.dev.for_user(u).get("whoami")) for u in USERS] == USERS
    assert dev.stats["api"] == len(USERS)


def test_one_client_reads_the_storage_once_and_keeps_its_session(
    dev: DevProvider,
) -> None:
    reads: list[t.Any] = []

    class Counting(MemoryStorage):
        def get(self, provider: str, **kwargs: t.Any) -> t.Any:
            reads.append(kwargs.get("user"))
            return super().get(provider, **kwargs)

    storage = Counting(user=lambda: None)
    app, oauth = make_app(dev, storage)
    give_tokens(dev, storage, "alice", "bob")
    with app.app_context():
        alice = oauth.dev.for_user("alice")
        assert alice.session is alice.session
        for _ in range(3):
            assert caller(alice.get("whoami")) == "alice"
        assert reads == ["alice"]
        # Another client of the same user reads again: nothing is kept on g
        # outside a request.
        assert caller(oauth.dev.for_user("bob").get("whoami")) == "bob"
        assert caller(oauth.dev.for_user("alice").get("whoami")) == "alice"
        assert reads == ["alice", "bob", "alice"]


def test_expired_tokens_are_refreshed_in_a_job_and_saved_for_their_user(
    dev: DevProvider,
) -> None:
    storage = MemoryStorage(user=lambda: None)
    app, oauth = make_app(dev, storage)
    old = give_tokens(dev, storage, *USERS, expired=True)
    refreshed: list[str] = []

    def on_refresh(sender: t.Any, token: t.Any, **kw: t.Any) -> None:
        refreshed.append(token["access_token"])

    with app.app_context(), token_refreshed.connected_to(on_refresh):
        for user in USERS:
            client = oauth.dev.for_user(user)
            assert caller(client.get("whoami")) == user
            # The client holds the token it saved.
            assert client.token == storage.get("dev", user=user)
    stats = dev.stats.snapshot()
    assert stats.get("token_refresh_token") == len(USERS)
    assert stats.get("invalid_grant", 0) == 0
    for user in USERS:
        new = storage.get("dev", user=user)
        assert new is not None
        assert new["refresh_token"] != old[user]["refresh_token"]
        assert new["access_token"] in refreshed
    # Every saved token is the provider's for its own user.
    with app.app_context():
        for user in USERS:
            assert caller(oauth.dev.for_user(user).get("whoami")) == user
    assert dev.stats["token_refresh_token"] == len(USERS)


def test_a_user_without_a_token_gets_token_missing_naming_provider_and_user(
    dev: DevProvider,
) -> None:
    storage = MemoryStorage(user=lambda: None)
    app, oauth = make_app(dev, storage)
    with app.app_context():
        client = oauth.dev.for_user(42)
        assert client.token is None
        assert client.authorized is False
        with pytest.raises(TokenMissing, match="No dev token is stored for user 42"):
            client.get("whoami")
        with pytest.raises(TokenMissing, match="user 42"):
            client.refresh_token()
        with pytest.raises(TokenMissing, match="user 42"):
            client.userinfo()
    assert dev.stats["api"] == 0


def test_a_revoked_grant_raises_reauthorization_required_and_the_loop_goes_on(
    dev: DevProvider,
) -> None:
    """No browser in a job: the exception the job catches, the token removed, the
    other users' calls unaffected."""
    storage = MemoryStorage(user=lambda: None)
    app, oauth = make_app(dev, storage)
    users = ["ann", "revoked", "zoe"]
    give_tokens(dev, storage, *users, expired=True)
    dev.revoke_user("revoked")
    outcome: dict[str, str] = {}
    with app.app_context():
        for user in users:
            try:
                outcome[user] = caller(oauth.dev.for_user(user).get("whoami"))
            except ReauthorizationRequired as e:
                outcome[user] = f"reauthorize: {e}"
    assert outcome["ann"] == "ann" and outcome["zoe"] == "zoe"
    assert outcome["revoked"].startswith("reauthorize: ")
    assert "(dev, user 'revoked')" in outcome["revoked"]
    assert storage.get("dev", user="revoked") is None
    with app.app_context(), pytest.raises(TokenMissing):
        oauth.dev.for_user("revoked").get("whoami")


def test_token_assignment_authorized_refresh_and_userinfo_for_a_user(
    dev: DevProvider,
) -> None:
    storage = MemoryStorage(user=lambda: None)
    app, oauth = make_app(dev, storage)
    with app.app_context():
        client = oauth.dev.for_user("carol")
        assert not client.authorized
        client.token = dev.mint_token("carol")
        assert client.authorized
        assert storage.get("dev", user="carol") == client.token
        assert storage.get("dev", user="dave") is None
        before = client.token
        assert before is not None
        new = client.refresh_token()
        assert new["access_token"] != before["access_token"]
        assert storage.get("dev", user="carol") == new
        claims = client.userinfo()
        assert claims["sub"] == "carol"
        assert claims["email"] == "carol@example.test"
        client.token = None
        assert storage.get("dev", user="carol") is None
        assert not client.authorized
    assert dev.stats["token_refresh_token"] == 1


def test_revoke_token_for_a_user(dev: DevProvider) -> None:
    storage = MemoryStorage(user=lambda: None)
    app, oauth = make_app(dev, storage)
    give_tokens(dev, storage, "erin", "frank")
    with app.app_context():
        assert oauth.dev.for_user("erin").revoke_token() is True
        assert oauth.dev.for_user("erin").revoke_token() is False
        assert caller(oauth.dev.for_user("frank").get("whoami")) == "frank"
    assert storage.get("dev", user="erin") is None
    assert dev.stats["revocation"] == 2


def test_a_user_object_is_keyed_by_its_id(dev: DevProvider) -> None:
    class Account:
        def __init__(self, id: str) -> None:
            self.id = id

        def get_id(self) -> str:
            return self.id

    storage = MemoryStorage(user=lambda: None)
    app, oauth = make_app(dev, storage)
    give_tokens(dev, storage, "gina")
    with app.app_context():
        assert caller(oauth.dev.for_user(Account("gina")).get("whoami")) == "gina"


def test_outside_an_app_context_the_error_says_so(dev: DevProvider) -> None:
    app, oauth = make_app(dev, MemoryStorage())
    client = oauth.dev.for_user("alice")
    with pytest.raises(RuntimeError, match="application context"):
        client.get("whoami")
    with pytest.raises(RuntimeError, match="application context"):
        oauth.dev.get("whoami")


def test_none_is_no_user(dev: DevProvider) -> None:
    app, oauth = make_app(dev, MemoryStorage())
    with app.app_context(), pytest.raises(ValueError, match="not None"):
        oauth.dev.for_user(None)


def test_the_provider_failing_in_a_job_raises_a_provider_error(
    dev: DevProvider,
) -> None:
    storage = MemoryStorage(user=lambda: None)
    app, oauth = make_app(dev, storage)
    give_tokens(dev, storage, "hal")
    with app.app_context():
        client = oauth.dev.for_user("hal")
        with pytest.raises(ProviderUnavailable) as caught:
            client.get("http://127.0.0.1:1/api/whoami")
        assert caught.value.provider == "dev"


def test_in_threads_each_user_gets_one_refresh_and_only_their_own_token(
    dev: DevProvider,
) -> None:
    """24 threads, each with its own app context, two per user for 12 users whose
    tokens expired: one refresh per user, no failure, every call with the user's
    own token, and both calls of a user with the same new token."""
    dev.token_delay = 0.1
    storage = MemoryStorage(user=lambda: None)
    app, oauth = make_app(dev, storage)
    give_tokens(dev, storage, *USERS, expired=True)
    dev.reset_stats()
    barrier = threading.Barrier(2 * len(USERS))
    seen: list[tuple[str, str, str]] = []
    errors: list[BaseException] = []

    def job(user: str) -> None:
        try:
            with app.app_context():
                client = oauth.dev.for_user(user)
                barrier.wait(10)
                sub = caller(client.get("whoami"))
                token = client.token
                assert token is not None
                seen.append((user, sub, token["access_token"]))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=job, args=(u,)) for u in USERS + USERS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert sorted((u, s) for u, s, _ in seen) == sorted((u, u) for u in USERS + USERS)
    for user in USERS:
        tokens = {tok for u, _, tok in seen if u == user}
        stored = storage.get("dev", user=user)
        assert stored is not None and tokens == {stored["access_token"]}
    stats = dev.stats.snapshot()
    assert stats.get("token_refresh_token") == len(USERS)
    assert stats.get("invalid_grant", 0) == 0


# -- in a request ---------------------------------------------------------------------


def request_app(dev: DevProvider) -> tuple[Flask, OAuth, MemoryStorage]:
    """The current user is the ``X-User`` header; ``/act-for/<user>`` calls the
    API for another user, like a webhook or an admin page."""
    storage = MemoryStorage(user=lambda: request.headers.get("X-User"))
    app, oauth = make_app(dev, storage)

    @app.get("/act-for/<user>")
    def act_for(user: str) -> t.Any:
        theirs = oauth.dev.for_user(user).get("whoami")
        mine = oauth.dev.get("whoami") if oauth.dev.authorized else None
        return jsonify(
            theirs=caller(theirs),
            mine=caller(mine) if mine is not None else None,
            same=oauth.dev.session is oauth.dev.for_user(user).session,
        )

    @app.post("/hook/<user>")
    def hook(user: str) -> t.Any:
        return jsonify(sub=caller(oauth.dev.for_user(user).get("whoami")))

    return app, oauth, storage


def test_in_a_request_for_another_user_each_side_gets_its_own_token(
    dev: DevProvider,
) -> None:
    app, oauth, storage = request_app(dev)
    give_tokens(dev, storage, "alice", "bob")
    client = app.test_client()
    r = client.get("/act-for/bob", headers={"X-User": "alice"})
    assert r.json == {"theirs": "bob", "mine": "alice", "same": False}
    # For the current user itself: one session, shared.
    r = client.get("/act-for/alice", headers={"X-User": "alice"})
    assert r.json == {"theirs": "alice", "mine": "alice", "same": True}
    # A request without a logged-in user (a webhook).
    r = client.post("/hook/bob")
    assert r.json == {"sub": "bob"}


def test_in_a_request_another_users_missing_token_is_a_401_page_not_a_login(
    dev: DevProvider,
) -> None:
    """The browser asking is not the user whose token is missing: sending it to log
    in would store its own token (and come back to the same error)."""
    app, oauth, storage = request_app(dev)
    give_tokens(dev, storage, "alice")
    client = app.test_client()
    r = client.get("/act-for/nobody", headers={"X-User": "alice"})
    assert r.status_code == 401
    assert "Location" not in r.headers
    r = client.get(
        "/act-for/nobody", headers={"X-User": "alice", "Accept": "application/json"}
    )
    assert r.status_code == 401
    assert r.json is not None and r.json["error"] == "token_missing"
    r = client.post("/hook/nobody")
    assert r.status_code == 401


def test_in_a_request_another_users_revoked_grant_is_a_401_and_removes_the_token(
    dev: DevProvider,
) -> None:
    app, oauth, storage = request_app(dev)
    give_tokens(dev, storage, "alice")
    give_tokens(dev, storage, "mallory", expired=True)
    dev.revoke_user("mallory")
    r = app.test_client().get("/act-for/mallory", headers={"X-User": "alice"})
    assert r.status_code == 401
    assert "Location" not in r.headers
    assert storage.get("dev", user="mallory") is None
    assert storage.get("dev", user="alice") is not None


def test_in_a_request_the_provider_failing_is_a_5xx_page(dev: DevProvider) -> None:
    storage = MemoryStorage(user=lambda: None)
    app, oauth = make_app(dev, storage)
    give_tokens(dev, storage, "alice", expired=True)
    ap = app.extensions["oauthclient"].providers["dev"]
    with app.app_context():
        ap.endpoints()  # discovery first, then the token endpoint goes away
    ap.explicit = {**ap.explicit, "token_url": "http://127.0.0.1:1/token"}

    @app.get("/sync")
    def sync() -> t.Any:
        return jsonify(sub=caller(oauth.dev.for_user("alice").get("whoami")))

    r = app.test_client().get("/sync", headers={"Accept": "application/json"})
    assert r.status_code == 503
    assert r.json is not None and r.json["error"] == "provider_unavailable"
    # The token stays for a later try.
    with app.app_context():
        assert storage.get("dev", user="alice") is not None
        with pytest.raises(ProviderError):
            oauth.dev.for_user("alice").get("whoami")


# -- storages that can't serve other users --------------------------------------------


def test_session_storage_refuses_for_user_with_a_clear_error(dev: DevProvider) -> None:
    app, oauth = make_app(dev, SessionStorage())
    with app.app_context():
        with pytest.raises(ConfigurationError, match="SQLAlchemyStorage"):
            oauth.dev.for_user("alice")
        # Outside a request the current user's token can't be read either.
        with pytest.raises(ConfigurationError, match="outside a request"):
            oauth.dev.get("whoami")
    client = oauth.dev.for_user("alice")  # no app context: checked on use
    assert isinstance(client, UserClient)
    with app.test_request_context(), pytest.raises(ConfigurationError):
        client.get("whoami")


# -- SQLAlchemyStorage: a job over the app's users -------------------------------------


@contextmanager
def sqla_app(
    dev: DevProvider, url: str
) -> t.Iterator[tuple[Flask, OAuth, SQLAlchemy, type[t.Any]]]:
    db = SQLAlchemy()

    class Person(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "for_user_person"
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(80), nullable=False)

    class Token(OAuthTokenMixin, db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "for_user_token"
        user_id = db.Column(db.ForeignKey(Person.id), nullable=False)
        user = db.relationship(Person)

    storage = SQLAlchemyStorage(Token, db.session, user=lambda: None)
    app, oauth = make_app(dev, storage, SQLALCHEMY_DATABASE_URI=url)
    db.init_app(app)
    with app.app_context():
        db.create_all()
    try:
        yield app, oauth, db, Person
    finally:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: t.Any) -> t.Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'for_user.sqlite'}"
        return
    if not POSTGRES_URL:
        skip_or_fail(
            "PostgreSQL tests need FLASK_OAUTHCLIENT_TEST_POSTGRES_URL, e.g. "
            "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        )
    with postgres_schema(t.cast(str, POSTGRES_URL), "for_user") as url:
        yield url


def test_a_job_over_sqlalchemy_users_refreshes_and_saves_per_user(
    dev: DevProvider, database_url: str
) -> None:
    with sqla_app(dev, database_url) as (app, oauth, db, Person):
        storage = app.extensions["oauthclient"].storage
        with app.app_context():
            people = [Person(name=name) for name in USERS]
            db.session.add_all(people)
            db.session.commit()
            for person in people[::2]:
                token = dev.mint_token(person.name)
                token["expires_at"] = time.time() - 60
                storage.set("dev", token, user=person)
            db.session.remove()
        dev.reset_stats()
        with app.app_context():
            seen = {}
            for person in db.session.scalars(sa.select(Person).order_by(Person.id)):
                try:
                    seen[person.name] = caller(oauth.dev.for_user(person).get("who"))
                except TokenMissing:
                    seen[person.name] = None
        assert seen == {
            name: (name if i % 2 == 0 else None) for i, name in enumerate(USERS)
        }
        assert dev.stats["token_refresh_token"] == len(USERS[::2])
        assert dev.stats["invalid_grant"] == 0
        with app.app_context():
            for person in db.session.scalars(sa.select(Person)):
                token = storage.get("dev", user=person)
                assert (token is not None) == (person.name in USERS[::2])
                if token is not None:
                    assert token["expires_at"] > time.time()
