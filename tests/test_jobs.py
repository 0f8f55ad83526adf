"""Background jobs for real: Celery with the Redis broker, a worker process started
(and stopped) by the test, tokens in PostgreSQL through ``SQLAlchemyStorage``, and
the development provider over loopback HTTP with rotating refresh tokens and reuse
detection (a spent refresh token revokes the whole grant, as oidc-provider does).

1. Web requests (werkzeug's threaded server in this process) and the worker's tasks
   (threads of another process) find the same user's token expired at the same
   moment: the provider sees one refresh, no call fails, all see the new token.
2. A nightly job loops over 50 users in one app context: each call carries that
   user's own token, as the provider itself reports.

Also the example app's ``flask users sync`` command and its webhook, which act for
users other than the logged-in one.
"""

from __future__ import annotations

import os
import threading
import time
import typing as t
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from conftest import POSTGRES_URL
from conftest import skip_or_fail
from flask import Flask
from helpers.live_servers import log_in
from helpers.live_servers import postgres_schema
from helpers.live_servers import serve_in_thread

from flask_oauthclient.testing import DevProvider

if t.TYPE_CHECKING:
    from types import ModuleType

    from helpers.jobs_worker import CeleryWorker

#: Concurrent calls from each side in test 1.
CALLS = 8
#: The provider's token endpoint takes this long, as a real one does: the other
#: callers arrive while the first refresh is in flight.
TOKEN_DELAY = 0.2
BROKER_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def dev() -> t.Iterator[DevProvider]:
    provider = DevProvider(revoke_grant_on_reuse=True, token_delay=TOKEN_DELAY)
    with provider.serve():
        yield provider


@pytest.fixture(scope="module")
def jobs_app() -> ModuleType:
    """The app and its Celery tasks, once Celery and Redis are known to be there."""
    try:
        import celery  # noqa: F401
    except ImportError:
        skip_or_fail(
            "The job queue tests need Celery with Redis: pip install 'celery[redis]'"
        )
    import redis

    try:
        redis.Redis.from_url(BROKER_URL, socket_timeout=2).ping()
    except redis.RedisError as e:
        skip_or_fail(f"The job queue tests need Redis at {BROKER_URL}: {e}")
    from helpers import jobs_app

    return jobs_app


@pytest.fixture
def database_url() -> t.Iterator[str]:
    if not POSTGRES_URL:
        skip_or_fail(
            "The job queue tests need PostgreSQL: set "
            "FLASK_OAUTHCLIENT_TEST_POSTGRES_URL, e.g. "
            "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        )
    with postgres_schema(t.cast(str, POSTGRES_URL), "jobs") as url:
        yield url


@pytest.fixture
def app(jobs_app: ModuleType, dev: DevProvider, database_url: str) -> t.Iterator[Flask]:
    app = jobs_app.create_app(dev.issuer, database_url)
    try:
        yield app
    finally:
        with app.app_context():
            jobs_app.db.session.remove()
            for engine in jobs_app.db.engines.values():
                engine.dispose()


@pytest.fixture
def worker(
    jobs_app: ModuleType, dev: DevProvider, database_url: str, tmp_path: Path
) -> t.Iterator[CeleryWorker]:
    from helpers.jobs_worker import CeleryWorker

    env = {
        "JOBS_PROVIDER_URL": t.cast(str, dev.issuer),
        "JOBS_DATABASE_URL": database_url,
    }
    with CeleryWorker(
        env, tmp_path / "worker.log", broker_url=BROKER_URL, concurrency=CALLS
    ) as started:
        yield started


def run(jobs_app: ModuleType, worker: CeleryWorker, name: str, *args: t.Any) -> t.Any:
    result = jobs_app.send(name, *args, queue=worker.queue)
    try:
        return result.get(timeout=120)
    except Exception as e:
        raise AssertionError(f"{name} failed: {e!r}\n{worker.log_tail()}") from e
    finally:
        result.forget()


def user_id(jobs_app: ModuleType, app: Flask, name: str) -> int:
    with app.app_context():
        user = jobs_app.db.session.execute(
            sa.select(jobs_app.User).filter_by(name=name)
        ).scalar_one()
        return int(user.id)


def stored_digest(jobs_app: ModuleType, app: Flask, name: str) -> str | None:
    with app.app_context():
        user = jobs_app.db.session.get(jobs_app.User, user_id(jobs_app, app, name))
        token = app.extensions["oauthclient"].storage.get("dev", user=user)
        jobs_app.db.session.remove()
    return jobs_app.digest(token["access_token"]) if token else None


def expire(jobs_app: ModuleType, app: Flask, dev: DevProvider, name: str) -> None:
    """Expire the user's access token at the provider and in the database."""
    dev.expire_access_tokens()
    with app.app_context():
        storage = app.extensions["oauthclient"].storage
        user = jobs_app.db.session.get(jobs_app.User, user_id(jobs_app, app, name))
        token = storage.get("dev", user=user)
        token["expires_at"] = time.time() - 60
        storage.set("dev", token, user=user)
        jobs_app.db.session.remove()


@pytest.mark.slow
def test_web_requests_and_a_worker_refresh_the_same_token_once(
    jobs_app: ModuleType,
    app: Flask,
    dev: DevProvider,
    worker: CeleryWorker,
) -> None:
    with serve_in_thread(app) as base_url:
        browser, r = log_in(base_url, dev, "alice", "/whoami")
        assert r.status_code == 200 and r.json()["sub"] == "alice", r.text[:300]
        alice = user_id(jobs_app, app, "alice")
        # Warm the worker up: its app, the discovery document, a first call.
        warm = run(jobs_app, worker, "jobs.call_api", alice)
        assert (warm.get("status"), warm.get("sub")) == (200, "alice"), warm

        expire(jobs_app, app, dev, "alice")
        before = stored_digest(jobs_app, app, "alice")
        dev.reset_stats()
        at = time.time() + 2.0
        tasks = [
            jobs_app.send("jobs.call_api", alice, at, queue=worker.queue)
            for _ in range(CALLS)
        ]
        web: list[dict[str, t.Any]] = []
        errors: list[BaseException] = []

        def browse() -> None:
            try:
                with requests.Session() as session:
                    session.cookies.update(browser.cookies)
                    r = session.get(f"{base_url}/whoami", params={"at": at}, timeout=60)
                    web.append({"http": r.status_code, **r.json()})
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=browse) for _ in range(CALLS)]
        for thread in threads:
            thread.start()
        jobs = [task.get(timeout=120) for task in tasks]
        for task in tasks:
            task.forget()
        for thread in threads:
            thread.join(60)
        browser.close()

    log = worker.log_tail()
    assert not errors, errors
    stats = dev.stats.snapshot()
    assert stats.get("token_refresh_token") == 1, f"{stats}\n{log}"
    assert stats.get("invalid_grant", 0) == 0, f"{stats}\n{log}"
    assert len(web) == len(jobs) == CALLS
    assert all(w["http"] == 200 and w["status"] == 200 for w in web), web
    assert all(j.get("status") == 200 for j in jobs), f"{jobs}\n{log}"
    assert {w["sub"] for w in web} == {j["sub"] for j in jobs} == {"alice"}
    # At the same moment, from two processes: every call started before the first
    # one ended (the refresh alone takes TOKEN_DELAY).
    calls = web + jobs
    assert max(c["started"] for c in calls) < min(c["ended"] for c in calls), calls
    assert {j["pid"] for j in jobs} != {os.getpid()}
    after = stored_digest(jobs_app, app, "alice")
    assert after is not None and after != before
    assert {w["access_token"] for w in web} == {after}
    assert {j["access_token"] for j in jobs} == {after}
    print(
        f"\n{CALLS} web requests + {CALLS} worker tasks on an expired token: "
        f"{stats.get('token_refresh_token')} refresh, "
        f"{stats.get('invalid_grant', 0)} invalid_grant, {stats.get('api')} API calls"
    )


@pytest.mark.slow
def test_a_job_over_50_users_sends_each_users_own_token(
    jobs_app: ModuleType,
    app: Flask,
    dev: DevProvider,
    worker: CeleryWorker,
) -> None:
    """Every fifth user's token expired (refreshed in the loop), one user revoked
    the app at the provider (reported, the loop goes on), one user has no token
    (not selected): every call the provider saw carried its own user's token."""
    names = [f"member{i:02d}" for i in range(50)]
    expired = set(names[::5])
    revoked = "member07"
    with app.app_context():
        db, User = jobs_app.db, jobs_app.User
        storage = app.extensions["oauthclient"].storage
        users = [User(name=name) for name in names + ["tokenless"]]
        db.session.add_all(users)
        db.session.commit()
        for user in users[:50]:
            token = dev.mint_token(user.name)
            if user.name in expired or user.name == revoked:
                token["expires_at"] = time.time() - 60
            storage.set("dev", token, user=user)
        db.session.remove()
    dev.revoke_user(revoked)
    dev.reset_stats()

    done = run(jobs_app, worker, "jobs.sync_all")

    by_user = {d["user"]: d for d in done}
    assert sorted(by_user) == names
    assert by_user.pop(revoked) == {
        "user": revoked,
        "error": "must log in again",
    }
    wrong = [d for d in by_user.values() if d.get("sub") != d["user"]]
    assert not wrong, wrong
    assert all(d["path"] == f"sync/{d['user']}" for d in by_user.values())
    stats = dev.stats.snapshot()
    assert stats.get("api") == 49, stats
    assert stats.get("token_refresh_token") == len(expired) + 1, stats
    assert stats.get("invalid_grant") == 1, stats
    print(
        f"\n50 users in one job: 49 calls each with its own user's token, "
        f"{stats.get('token_refresh_token')} refreshes, 1 revoked grant reported"
    )

    # The refreshed tokens were saved for their own users: each works as that user
    # without another refresh.
    assert stored_digest(jobs_app, app, revoked) is None
    oauth = jobs_app.oauth_of(app)
    with app.app_context():
        for user in jobs_app.db.session.scalars(sa.select(jobs_app.User)):
            if user.name in (revoked, "tokenless"):
                continue
            r = oauth.dev.for_user(user).get("check")
            assert r.json()["sub"] == user.name
    assert dev.stats["token_refresh_token"] == len(expired) + 1


# -- the example app: a command and a webhook acting for other users ------------------


@pytest.fixture
def example(oauth_dev_provider: DevProvider, tmp_path: Path) -> t.Iterator[Flask]:
    """The example app, on the test session's development provider: the example
    app registers its providers once per process (``test_example_app.py`` does
    it too)."""
    dev = oauth_dev_provider
    from example_app import create_app
    from example_app import db

    os.environ["DEV_PROVIDER_URL"] = t.cast(str, dev.issuer)
    try:
        app = create_app(
            {
                "TESTING": True,
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'example.sqlite'}",
                "WEBHOOK_SECRET": "webhook secret",
            }
        )
        yield app
        with app.app_context():
            db.engine.dispose()
    finally:
        del os.environ["DEV_PROVIDER_URL"]


def example_user(app: Flask, sub: str) -> t.Any:
    from example_app import db
    from example_app import OAuthToken

    with app.app_context():
        row = db.session.scalars(sa.select(OAuthToken).filter_by(subject=sub)).one()
        return row.user_id


def test_example_users_sync_calls_the_api_for_every_user(
    example: Flask, oauth_dev_provider: DevProvider
) -> None:
    """``flask users sync``: one line per user with a token, each user's profile
    read with their own token; an expired token is refreshed for its user; a user
    who revoked the app is told to log in again, and the command goes on."""
    from example_app import db
    from example_app import User
    from flask_oauthclient.testing.pytest_plugin import dev_login

    dev = oauth_dev_provider
    for name in ("syncann", "syncbob", "synccy"):
        r = dev_login(example.test_client(), dev, "dev", name, next="/profile")
        assert r.status_code == 302, r.text
    ids = {
        name: example_user(example, name) for name in ("syncann", "syncbob", "synccy")
    }
    with example.app_context():
        # Renamed here: the sync brings the provider's name back.
        db.session.get(User, ids["syncbob"]).name = "someone else"
        db.session.commit()
        storage = example.extensions["oauthclient"].storage
        bob = db.session.get(User, ids["syncbob"])
        token = storage.get("dev", user=bob)
        token["expires_at"] = time.time() - 60
        storage.set("dev", token, user=bob)
    dev.revoke_user("synccy")
    dev.reset_stats()

    result = example.test_cli_runner().invoke(args=["users", "sync"])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"user {ids['syncann']}: synced Syncann <syncann@example.test>",
        f"user {ids['syncbob']}: synced Syncbob <syncbob@example.test>",
        f"user {ids['synccy']}: must log in again",
        "2 synced, 1 must log in again, 0 failed",
    ]
    stats = dev.stats.snapshot()
    # syncbob's token was refreshed first; synccy's was refused (a 401), then its
    # refresh too.
    assert stats.get("token_refresh_token") == 2, stats
    assert stats.get("invalid_grant") == 1, stats
    assert stats.get("userinfo") == 3, stats
    result = example.test_cli_runner().invoke(args=["users", "sync"])
    assert result.output.splitlines()[-1] == "2 synced, 0 must log in again, 0 failed"


def test_example_webhook_acts_for_the_user_it_concerns(
    example: Flask, oauth_dev_provider: DevProvider
) -> None:
    from flask_oauthclient.testing.pytest_plugin import dev_login

    dev = oauth_dev_provider
    ann = example.test_client()
    dev_login(ann, dev, "dev", "syncann", next="/profile")
    dev_login(example.test_client(), dev, "dev", "syncbob", next="/profile")
    bob_id = example_user(example, "syncbob")
    secret = {"X-Webhook-Secret": "webhook secret"}
    dev.reset_stats()

    # ann's browser is logged in; the call is for bob, with bob's token.
    r = ann.post("/webhooks/dev", json={"sub": "syncbob"}, headers=secret)
    assert (r.status_code, r.json) == (200, {"status": "synced", "user": bob_id})
    assert dev.stats["userinfo"] == 1
    r = example.test_client().post(
        "/webhooks/dev", json={"sub": "syncbob"}, headers=secret
    )
    assert r.status_code == 200

    r = ann.post(
        "/webhooks/dev", json={"sub": "syncbob"}, headers={"X-Webhook-Secret": "x"}
    )
    assert r.status_code == 403
    r = ann.post("/webhooks/dev", json={"sub": "nobody"}, headers=secret)
    assert r.status_code == 404
    r = ann.post("/webhooks/dev", json={"user": "syncbob"}, headers=secret)
    assert r.status_code == 400

    dev.revoke_user("syncbob")
    r = ann.post("/webhooks/dev", json={"sub": "syncbob"}, headers=secret)
    assert (r.status_code, r.json) == (
        202,
        {"status": "must log in again", "user": bob_id},
    )
    # ann's own session is untouched.
    assert ann.get("/profile").status_code == 200
