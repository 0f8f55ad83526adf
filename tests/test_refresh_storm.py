"""Refresh under load, for real: the development provider over HTTP (rotating refresh
tokens; a spent refresh token answers ``invalid_grant``), tokens in the database
through ``SQLAlchemyStorage``, and the app (``storm_app.py``) served by werkzeug's
threaded server in this process or by gunicorn worker processes.

An expired token hit by many requests at once is refreshed exactly once, and the
token left in the database still refreshes afterwards: a second refresh racing the
first would have spent the refresh token and stored one the provider refuses.
"""

from __future__ import annotations

import threading
import time
import typing as t
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa
from conftest import DATABASES
from conftest import mariadb_url
from conftest import postgres_url
from flask import Flask
from helpers.live_servers import Gunicorn
from helpers.live_servers import log_in
from helpers.live_servers import serve_in_thread
from helpers.live_servers import server_database
from helpers.storm_app import create_app
from helpers.storm_app import db
from helpers.storm_app import digest
from helpers.storm_app import OAuthToken
from helpers.storm_app import User

from flask_oauthclient.sqla import SQLAlchemyStorage
from flask_oauthclient.testing import DevProvider

SECRET_KEY = "storm test secret key"
#: Concurrent requests in a storm.
STORM = 16
#: Each token request takes this long at the provider, as a real one does: the other
#: requests of a storm arrive while the first refresh is in flight.
TOKEN_DELAY = 0.2


@pytest.fixture(scope="module")
def dev() -> t.Iterator[DevProvider]:
    provider = DevProvider(token_delay=TOKEN_DELAY)
    with provider.serve():
        yield provider


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> t.Iterator[str]:
    """A SQLite file, or a PostgreSQL schema or MariaDB database of the test's own
    (dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'storm.sqlite'}"
        return
    with _server_database(request.param) as url:
        yield url


@pytest.fixture(params=[name for name in DATABASES if name != "sqlite"])
def server_url(request: pytest.FixtureRequest) -> t.Iterator[str]:
    """A PostgreSQL schema or MariaDB database of the test's own."""
    with _server_database(request.param) as url:
        yield url


@contextmanager
def _server_database(name: str) -> t.Iterator[str]:
    url = mariadb_url() if name == "mariadb" else postgres_url()
    with server_database(url, "storm") as scoped:
        yield scoped


@contextmanager
def local_app(
    dev: DevProvider, database_url: str, config: dict[str, t.Any] | None = None
) -> t.Iterator[Flask]:
    """The app in this process: it creates the tables, and the tests seed and read
    tokens through it (also while gunicorn workers serve the same database)."""
    app = create_app(dev.issuer, database_url, SECRET_KEY, config)
    try:
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()


def _storage(app: Flask) -> SQLAlchemyStorage:
    return t.cast(SQLAlchemyStorage, app.extensions["oauthclient"].storage)


def _user(name: str) -> User:
    return db.session.execute(sa.select(User).filter_by(name=name)).scalar_one()


def expire(app: Flask, dev: DevProvider, *names: str) -> None:
    """Expire the users' access tokens at the provider and in the database, where
    the app reads ``expires_at``: their next API call refreshes first."""
    dev.expire_access_tokens()
    with app.app_context():
        for name in names:
            user = _user(name)
            token = _storage(app).get("dev", user=user)
            assert token is not None, f"{name} has no token"
            token["expires_at"] = time.time() - 60
            _storage(app).set("dev", token, user=user)
        db.session.remove()


def stored(app: Flask, name: str) -> dict[str, t.Any] | None:
    """The user's token column, as committed."""
    table = t.cast(sa.Table, OAuthToken.__table__)
    users = t.cast(sa.Table, User.__table__)
    with app.app_context():
        with db.engine.connect() as conn:
            row = conn.execute(
                sa.select(table.c.token)
                .join(users, users.c.id == table.c.user_id)
                .where(users.c.name == name, table.c.provider == "dev")
            ).one()
    return t.cast("dict[str, t.Any] | None", row.token)


def logged_in(base_url: str, dev: DevProvider, name: str) -> requests.Session:
    """A browser session logged in as ``name``, through the provider."""
    session, response = log_in(base_url, dev, name, "/whoami")
    assert response.status_code == 200, response.text[:500]
    assert response.json()["sub"] == name
    return session


@dataclass
class Answer:
    user: str
    status: int
    body: dict[str, t.Any]


def storm(
    base_url: str,
    browsers: dict[str, requests.Session],
    count: int = STORM,
    path: str = "/whoami",
) -> tuple[list[Answer], float]:
    """``count`` requests to ``path`` (``/whoami``) at once, each on a connection of
    its own, taking turns among the logged-in ``browsers``; return the answers and
    the seconds the storm took."""
    names = list(browsers)
    barrier = threading.Barrier(count + 1)
    answers: list[Answer] = []
    errors: list[BaseException] = []

    def browse(i: int) -> None:
        name = names[i % len(names)]
        try:
            with requests.Session() as session:
                session.cookies.update(browsers[name].cookies)
                barrier.wait(30)
                r = session.get(
                    base_url + path, headers={"Connection": "close"}, timeout=60
                )
                try:
                    body = r.json()
                except ValueError:
                    body = {"text": r.text[:500]}
                answers.append(Answer(name, r.status_code, body))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=browse, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    barrier.wait(30)
    started = time.monotonic()
    for thread in threads:
        thread.join(90)
    elapsed = time.monotonic() - started
    assert not errors, errors
    assert len(answers) == count
    return answers, elapsed


def check_storm(
    answers: list[Answer], dev: DevProvider, refreshes: int, log: str = ""
) -> None:
    """Every request succeeded with its own user's token, each user's requests used
    one (new) access token, and the provider saw ``refreshes`` refreshes."""
    failed = [
        a
        for a in answers
        if a.status != 200 or a.body.get("sub") != a.user or a.body["user"] != a.user
    ]
    assert not failed, f"{len(failed)} failed: {failed[:3]}\n{log}"
    tokens = {(a.user, a.body["access_token"]) for a in answers}
    assert len(tokens) == len({a.user for a in answers}), f"{tokens}\n{log}"
    stats = dev.stats.snapshot()
    assert stats.get("token_refresh_token", 0) == refreshes, f"{stats}\n{log}"
    assert stats.get("invalid_grant", 0) == 0, f"{stats}\n{log}"


def check_still_refreshes(
    base_url: str, app: Flask, dev: DevProvider, browser: requests.Session, name: str
) -> None:
    """Force one more refresh of the stored token: the provider takes it."""
    before = stored(app, name)
    assert before is not None
    refreshes = dev.stats["token_refresh_token"]
    r = browser.post(f"{base_url}/refresh", timeout=30)
    assert r.status_code == 200, r.text[:500]
    assert dev.stats["token_refresh_token"] == refreshes + 1
    assert dev.stats["invalid_grant"] == 0
    after = stored(app, name)
    assert after is not None
    assert after["refresh_token"] != before["refresh_token"]
    assert digest(after["access_token"]) == r.json()["access_token"]
    r = browser.get(f"{base_url}/whoami", timeout=30)
    assert (r.status_code, r.json()["sub"]) == (200, name)


# -- threads in one process -----------------------------------------------------------


def test_threads_refresh_once(dev: DevProvider, database_url: str) -> None:
    """16 requests find alice's token expired: one refresh, 16 answers, and the
    stored token refreshes again afterwards."""
    with local_app(dev, database_url) as app, serve_in_thread(app) as base_url:
        with logged_in(base_url, dev, "alice") as alice:
            before = stored(app, "alice")
            assert before is not None
            expire(app, dev, "alice")
            dev.reset_stats()
            answers, elapsed = storm(base_url, {"alice": alice})
            check_storm(answers, dev, refreshes=1)
            after = stored(app, "alice")
            assert after is not None
            assert after["refresh_token"] != before["refresh_token"]
            assert {a.body["access_token"] for a in answers} == {
                digest(after["access_token"])
            }
            print(f"threads: {STORM} requests, 1 refresh, {elapsed:.2f} s")
            check_still_refreshes(base_url, app, dev, alice, "alice")


def test_users_never_see_each_others_token(dev: DevProvider, database_url: str) -> None:
    """alice's and bob's requests interleave while both tokens are refreshed: every
    API call carries the token of the user who made the request."""
    with local_app(dev, database_url) as app, serve_in_thread(app) as base_url:
        alice = logged_in(base_url, dev, "alice")
        with alice, logged_in(base_url, dev, "bob") as bob:
            expire(app, dev, "alice", "bob")
            dev.reset_stats()
            answers, _ = storm(base_url, {"alice": alice, "bob": bob})
            check_storm(answers, dev, refreshes=2)
            # Without a refresh too.
            answers, _ = storm(base_url, {"alice": alice, "bob": bob})
            check_storm(answers, dev, refreshes=2)


@pytest.mark.parametrize("expired", [True, False], ids=["expired", "refused"])
def test_revoked_refresh_token_sends_the_browser_to_login(
    dev: DevProvider, database_url: str, expired: bool
) -> None:
    """The user revoked the app at the provider. Whether the app finds the access
    token expired (and refreshes first) or the provider refuses it (401, then a
    refresh): the refresh gets ``invalid_grant``, the token is removed, the browser
    goes to the login with ``next`` set to the page, and the next page view goes
    there again without trying another refresh."""
    with local_app(dev, database_url) as app, serve_in_thread(app) as base_url:
        with logged_in(base_url, dev, "carol") as carol:
            dev.revoke_user("carol")
            if expired:
                expire(app, dev, "carol")
            dev.reset_stats()
            r = carol.get(f"{base_url}/page", allow_redirects=False, timeout=30)
            assert r.status_code == 302, r.text[:500]
            location = urlsplit(r.headers["Location"])
            assert location.path == "/login/dev"
            assert parse_qs(location.query) == {"next": ["/page"]}
            assert dev.stats["token_refresh_token"] == 1
            assert dev.stats["invalid_grant"] == 1
            assert stored(app, "carol") is None

            r = carol.get(f"{base_url}/page", allow_redirects=False, timeout=30)
            assert r.status_code == 302
            assert urlsplit(r.headers["Location"]).path == "/login/dev"
            assert dev.stats["token_refresh_token"] == 1

            # Following the redirect logs carol in again, back on the page.
            dev.auto_login = "carol"
            try:
                r = carol.get(f"{base_url}/page", timeout=30)
            finally:
                dev.auto_login = None
            assert (r.status_code, r.text) == (200, "<p>Hello carol</p>")
            assert stored(app, "carol") is not None


def test_a_pool_smaller_than_the_threads_only_queues(
    dev: DevProvider, server_url: str
) -> None:
    """8 requests at once share 4 connections (no overflow); each view works with
    its database session for 0.3 s, then calls the API. They should queue for the
    pool (two rounds, about 0.7 s), not time out."""
    pool = {"pool_size": 4, "max_overflow": 0, "pool_timeout": 3}
    with local_app(dev, server_url, {"SQLALCHEMY_ENGINE_OPTIONS": pool}) as app:
        with serve_in_thread(app) as base_url:
            with logged_in(base_url, dev, "alice") as alice:
                dev.reset_stats()
                answers, _ = storm(
                    base_url, {"alice": alice}, count=8, path="/whoami?work=0.3"
                )
                check_storm(answers, dev, refreshes=0)


# -- gunicorn worker processes --------------------------------------------------------


def _storm_in_processes(
    dev: DevProvider, database_url: str, tmp_path: Path, workers: int
) -> None:
    with local_app(dev, database_url) as app:  # creates the tables first
        server = Gunicorn(
            "helpers.storm_app:create_app()",
            {
                "STORM_PROVIDER_URL": t.cast(str, dev.issuer),
                "STORM_DATABASE_URL": database_url,
                "STORM_SECRET_KEY": SECRET_KEY,
            },
            tmp_path / "gunicorn.log",
            workers=workers,
            worker_class="gthread",
            threads=STORM // workers,
        )
        with server:
            booted = server.warm_up("/ping")
            assert len(booted) == workers, server.log_tail()
            with logged_in(server.base_url, dev, "alice") as alice:
                expire(app, dev, "alice")
                dev.reset_stats()
                served_before = server.served_by("/whoami")
                answers, elapsed = storm(server.base_url, {"alice": alice})
                check_storm(answers, dev, refreshes=1, log=server.log_tail())
                pids = Counter(a.body["pid"] for a in answers)
                # Every request was served by some worker; more than one took part.
                assert len(pids) >= 2, f"{pids}\n{server.log_tail()}"
                assert set(pids) <= booted
                print(
                    f"{workers} workers: {STORM} requests, 1 refresh, {elapsed:.2f} s,"
                    f" per worker {sorted(pids.values())}, before {served_before}"
                )
                check_still_refreshes(server.base_url, app, dev, alice, "alice")

                # Two users, both expired, across the workers.
                with logged_in(server.base_url, dev, "bob") as bob:
                    expire(app, dev, "alice", "bob")
                    dev.reset_stats()
                    answers, _ = storm(server.base_url, {"alice": alice, "bob": bob})
                    check_storm(answers, dev, refreshes=2, log=server.log_tail())


@pytest.mark.slow
def test_worker_processes_refresh_once_on_a_server(
    dev: DevProvider, server_url: str, tmp_path: Path
) -> None:
    """4 gunicorn workers (4 threads each) on PostgreSQL (an advisory lock and the
    row lock) and on MariaDB (a named lock and the row lock): one refresh of all 16
    requests, none fails."""
    _storm_in_processes(dev, server_url, tmp_path, workers=4)


@pytest.mark.slow
def test_worker_processes_refresh_once_sqlite(dev: DevProvider, tmp_path: Path) -> None:
    """The same on a SQLite file: ``BEGIN IMMEDIATE`` (the database's write lock)
    serializes the workers' refreshes. (One machine only: SQLite's locks don't work
    over network file systems.)"""
    url = f"sqlite:///{tmp_path / 'storm.sqlite'}"
    _storm_in_processes(dev, url, tmp_path, workers=4)
