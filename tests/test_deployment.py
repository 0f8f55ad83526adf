"""The deployment of ``docs/deployment.rst``, tested: the example app
(``example_app:create_app()``) under gunicorn with 4 worker processes, tokens in
PostgreSQL (and MariaDB), sessions in signed cookies with a fixed ``SECRET_KEY`` (or
in Redis through Flask-Session), and the development provider served by the test.

A browser (a ``requests.Session`` following redirects) logs in through the provider;
a login may start in one worker and come back to another. Then the access token
expires and the profile page, loaded by several requests at once, refreshes it: once,
with a rotated refresh token stored.
"""

from __future__ import annotations

import threading
import time
import typing as t
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from conftest import mariadb_url
from conftest import POSTGRES_URL
from conftest import skip_or_fail
from helpers.live_servers import Gunicorn
from helpers.live_servers import server_database

from example_app import db
from example_app import OAuthToken
from example_app import User
from flask_oauthclient.testing import DevProvider

SECRET_KEY = "deployment test: a fixed key shared by every worker"
REDIS_URL = "redis://127.0.0.1:6379/0"
WORKERS = 4
#: Concurrent page loads when the token has expired.
BURST = 8


@pytest.fixture(scope="module")
def dev() -> t.Iterator[DevProvider]:
    provider = DevProvider(token_delay=0.1)
    with provider.serve():
        yield provider


@pytest.fixture
def database_url() -> t.Iterator[str]:
    """A PostgreSQL schema of the test's own, with the example app's tables, created
    before the workers start (each worker's ``create_all`` then finds them)."""
    if not POSTGRES_URL:
        skip_or_fail(
            "The deployment tests need PostgreSQL: set "
            "FLASK_OAUTHCLIENT_TEST_POSTGRES_URL, e.g. "
            "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        )
    with server_database(t.cast(str, POSTGRES_URL), "deploy") as url:
        _create_tables(url)
        yield url


@pytest.fixture
def mariadb_database_url() -> t.Iterator[str]:
    """The same in a MariaDB database of the test's own."""
    with server_database(mariadb_url(), "deploy") as url:
        _create_tables(url)
        yield url


def _create_tables(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        db.metadata.create_all(engine)
    finally:
        engine.dispose()


@dataclass
class Sessions:
    """Where the app under gunicorn keeps its sessions."""

    kind: str
    app_spec: str
    env: dict[str, str]
    #: How many sessions the server side holds (None: they are in the cookies).
    stored: t.Callable[[], int | None]


@pytest.fixture(params=["cookies", "redis"])
def sessions(request: pytest.FixtureRequest) -> t.Iterator[Sessions]:
    if request.param == "cookies":
        yield Sessions("cookies", "example_app:create_app()", {}, lambda: None)
        return
    pytest.importorskip("flask_session", reason="the Redis variant needs Flask-Session")
    redis = pytest.importorskip("redis", reason="the Redis variant needs redis-py")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as e:
        client.close()
        skip_or_fail(f"Redis is not reachable at {REDIS_URL}: {e}")
    prefix = f"deploy-test-{uuid.uuid4().hex[:10]}:"
    try:
        yield Sessions(
            "redis",
            "redis_session_app:create_app()",
            {"SESSION_REDIS_URL": REDIS_URL, "SESSION_KEY_PREFIX": prefix},
            lambda: len(list(client.scan_iter(f"{prefix}*"))),
        )
    finally:
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        client.close()


def token_row(database_url: str, name: str) -> dict[str, t.Any] | None:
    tokens = t.cast(sa.Table, OAuthToken.__table__)
    users = t.cast(sa.Table, User.__table__)
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.select(tokens.c.token)
                .join(users, users.c.id == tokens.c.user_id)
                .where(users.c.name == name.title(), tokens.c.provider == "dev")
            ).scalar_one()
    finally:
        engine.dispose()


def expire_in_database(database_url: str, name: str) -> None:
    """Make the stored token expired, as it would be an hour later."""
    tokens = t.cast(sa.Table, OAuthToken.__table__)
    users = t.cast(sa.Table, User.__table__)
    token = token_row(database_url, name)
    assert token is not None
    token["expires_at"] = time.time() - 60
    user_id = sa.select(users.c.id).where(users.c.name == name.title())
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.update(tokens)
                .where(tokens.c.user_id == user_id.scalar_subquery())
                .values(token=token)
            )
    finally:
        engine.dispose()


def log_in(
    server: Gunicorn, dev: DevProvider, name: str
) -> tuple[requests.Session, int, int]:
    """Log in as ``name`` like a browser, each request on a new connection (so any
    worker may take it); return the session and the pids of the workers that
    started the login and took the callback."""
    browser = requests.Session()
    browser.headers["Connection"] = "close"
    dev.auto_login = name
    try:
        r = browser.get(
            f"{server.base_url}/login/dev", params={"next": "/profile"}, timeout=30
        )
    finally:
        dev.auto_login = None
    assert r.status_code == 200, f"{r.status_code} {r.text[:300]}\n{server.log_tail()}"
    assert f"{name}@example.test" in r.text
    start, _authorize, callback = (h.request for h in r.history)
    assert start.path_url.startswith("/login/dev?")
    assert callback.path_url.startswith("/login/dev/authorized?")
    return (
        browser,
        server.pid_of(t.cast(str, start.path_url)),
        server.pid_of(t.cast(str, callback.path_url)),
    )


def load_profiles(
    base_url: str, browser: requests.Session, count: int
) -> list[tuple[int, str]]:
    """``count`` loads of /profile at once, each on a new connection."""
    barrier = threading.Barrier(count)
    results: list[tuple[int, str]] = []
    errors: list[BaseException] = []

    def load() -> None:
        try:
            with requests.Session() as session:
                session.cookies.update(browser.cookies)
                barrier.wait(30)
                r = session.get(
                    f"{base_url}/profile",
                    headers={"Connection": "close"},
                    allow_redirects=False,
                    timeout=60,
                )
                results.append((r.status_code, r.text))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=load) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert not errors, errors
    return results


@pytest.mark.slow
def test_four_workers_on_postgresql(
    dev: DevProvider, database_url: str, sessions: Sessions, tmp_path: Path
) -> None:
    four_workers(dev, database_url, sessions, tmp_path)


@pytest.mark.slow
def test_four_workers_on_mariadb(
    dev: DevProvider, mariadb_database_url: str, tmp_path: Path
) -> None:
    """The same on MariaDB (a named lock and the row lock), sessions in cookies."""
    cookies = Sessions("cookies", "example_app:create_app()", {}, lambda: None)
    four_workers(dev, mariadb_database_url, cookies, tmp_path)


def four_workers(
    dev: DevProvider, database_url: str, sessions: Sessions, tmp_path: Path
) -> None:
    server = Gunicorn(
        sessions.app_spec,
        {
            "DEV_PROVIDER_URL": t.cast(str, dev.issuer),
            "DATABASE_URL": database_url,
            "SECRET_KEY": SECRET_KEY,
            **sessions.env,
        },
        tmp_path / "gunicorn.log",
        workers=WORKERS,
        worker_class="gthread",
        threads=4,
    )
    with server:
        booted = server.warm_up("/")
        assert len(booted) == WORKERS, server.log_tail()

        # A login whose callback reaches another worker than the one that started
        # it: the pending login (state, PKCE verifier, nonce) is in the session.
        crossed = []
        for i in range(8):
            browser, started, called_back = log_in(server, dev, f"user{i}")
            browser.close()
            crossed.append((started, called_back))
            if started != called_back:
                break
        assert crossed[-1][0] != crossed[-1][1], f"{crossed}\n{server.log_tail()}"

        browser, _, _ = log_in(server, dev, "dana")
        with browser:
            cookie = browser.cookies["example_session"]
            if sessions.kind == "cookies":
                assert cookie.count(".") >= 2  # the session itself, signed
            else:
                assert "." not in cookie  # an id of a session kept in Redis
                assert sessions.stored()
            before = token_row(database_url, "dana")
            assert before is not None and before["refresh_token"]

            dev.expire_access_tokens()
            expire_in_database(database_url, "dana")
            dev.reset_stats()
            started_at = time.monotonic()
            results = load_profiles(server.base_url, browser, BURST)
            elapsed = time.monotonic() - started_at
            failed = [(status, text[:200]) for status, text in results if status != 200]
            assert not failed, f"{failed}\n{server.log_tail()}"
            assert all("dana@example.test" in text for _, text in results)
            stats = dev.stats.snapshot()
            assert stats.get("token_refresh_token") == 1, stats
            assert stats.get("invalid_grant", 0) == 0, stats

            after = token_row(database_url, "dana")
            assert after is not None
            assert after["refresh_token"] != before["refresh_token"]
            assert after["access_token"] != before["access_token"]
            assert after["expires_at"] > time.time() + 60
            print(
                f"{sessions.kind}: logins {crossed}, {BURST} page loads with an"
                f" expired token in {elapsed:.2f} s, 1 refresh"
            )
