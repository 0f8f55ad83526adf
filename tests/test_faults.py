"""Faults: the database failing while the callback saves the token (503, nobody
logged in, nothing written), the provider slow, down or babbling on every endpoint
the login uses (502/503/504 within the configured timeout), and answers far larger
than any token or profile refused while they stream in, while API responses are
the app's to read whatever their size."""

from __future__ import annotations

import io
import socket
import threading
import time
import typing as t
import uuid
from contextlib import contextmanager

import pytest
import requests
import sqlalchemy as sa
from flask.testing import FlaskClient
from flask_login import current_user
from helpers.fakes import CLIENT_ID
from helpers.fakes import CLIENT_SECRET
from helpers.fakes import FakeIdP
from helpers.fakes import ISSUER
from helpers.fakes import response
from helpers.hardening import BASE_URL
from helpers.hardening import complete
from helpers.hardening import log_in
from helpers.hardening import make_site
from helpers.hardening import plug
from helpers.hardening import Site
from helpers.hardening import start_login
from helpers.hardening import user_of
from requests.adapters import HTTPAdapter
from test_sqla import Env
from test_sqla import make_env

from flask_oauthclient import OAuth
from flask_oauthclient.signals import oauth_authorized
from flask_oauthclient.sqla import SQLAlchemyStorage
from flask_oauthclient.transport import MAX_TOKEN_RESPONSE_BYTES
from flask_oauthclient.transport import MAX_USERINFO_RESPONSE_BYTES

TIMEOUT = 0.5

# -- the database fails at the callback -----------------------------------------------


@contextmanager
def db_site(url: str) -> t.Iterator[tuple[Env, FakeIdP, FlaskClient]]:
    """An app on a real database; its user exists already, so that only the
    token write touches the token table. Requests run outside any app context
    (Flask would reuse a test's, with Flask-Login's user cached on g)."""
    env = make_env(url, uuid.uuid4().hex[:12])
    env.storage = SQLAlchemyStorage(
        env.OAuthToken, env.db.session, user=lambda: current_user, lock_timeout=0.3
    )
    env.app.config.update(PREFERRED_URL_SCHEME="https")
    oauth = OAuth()
    oauth.register(
        "corp",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
        scope=["openid"],
    )

    @oauth.on_login
    def on_login(provider: t.Any, token: t.Any, userinfo: t.Any) -> t.Any:
        return env.db.session.scalars(
            sa.select(env.User).filter_by(name=userinfo["sub"])
        ).one()

    oauth.init_app(env.app, storage=env.storage)
    idp = FakeIdP()
    plug(env.app, idp)
    with env.app.app_context():
        env.db.create_all()
        env.db.session.add(env.User(name="user-1"))
        env.db.session.commit()
    try:
        yield env, idp, env.app.test_client()
    finally:
        with env.app.app_context():
            env.db.drop_all()
            for engine in env.db.engines.values():
                engine.dispose()


def token_rows(env: Env) -> list[t.Any]:
    table = env.OAuthToken.__table__
    with env.app.app_context(), env.db.engine.connect() as conn:
        return list(conn.execute(sa.select(table.c.token)).scalars())


@contextmanager
def table_locked(env: Env) -> t.Iterator[None]:
    """Another client holds a lock that keeps writers out of the token table (a
    long migration, a stuck transaction) for longer than the storage waits."""
    with env.app.app_context():
        engine = env.db.engine
    conn = engine.connect()
    try:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the database's write lock
        elif engine.dialect.name in ("mysql", "mariadb"):
            # Readers pass; writers wait (lock_wait_timeout).
            table = env.OAuthToken.__table__.name
            conn.exec_driver_sql(f"LOCK TABLES `{table}` READ")
        else:
            conn.begin()
            table = env.OAuthToken.__table__.name
            # Readers pass (on_login's lookup); writers wait.
            conn.exec_driver_sql(f'LOCK TABLE "{table}" IN EXCLUSIVE MODE')
        yield
    finally:
        if engine.dialect.name in ("mysql", "mariadb"):
            conn.exec_driver_sql("UNLOCK TABLES")
        conn.rollback()
        conn.close()


@contextmanager
def writes_fail(env: Env) -> t.Iterator[None]:
    """Every write to the token table fails in the database itself (a full disk,
    a read-only replica after a failover)."""
    # On every engine: the storage may write through an engine of its own.
    engine = sa.Engine
    table = env.OAuthToken.__table__.name

    def sabotage(
        conn: t.Any, cursor: t.Any, statement: str, *args: t.Any
    ) -> tuple[str, t.Any]:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE")) and (
            table in statement
        ):
            statement = "INSERT INTO no_such_table_for_this_test VALUES (1)"
        return statement, args[0]

    sa.event.listen(engine, "before_cursor_execute", sabotage, retval=True)
    try:
        yield
    finally:
        sa.event.remove(engine, "before_cursor_execute", sabotage)


@pytest.mark.parametrize("fault", [table_locked, writes_fail])
def test_database_failing_at_the_callback_logs_nobody_in(
    database_url: str, fault: t.Callable[[Env], t.ContextManager[None]]
) -> None:
    with db_site(database_url) as (env, idp, client):
        authorized: list[t.Any] = []
        params = start_login(client, next="/after")
        with (
            fault(env),
            oauth_authorized.connected_to(lambda sender, **kw: authorized.append(kw)),
        ):
            started = time.monotonic()
            r = complete(client, idp, params)
            elapsed = time.monotonic() - started
        assert r.status_code == 503, r.data[:300]
        assert b"temporarily unavailable" in r.data
        assert elapsed < 5  # the storage's lock_timeout, not forever
        assert user_of(client) is None
        assert authorized == []
        assert token_rows(env) == []
        # The database is back: the next attempt logs in and stores the token.
        r = complete(client, idp, start_login(client))
        assert r.status_code == 302
        assert user_of(client) is not None
        [stored] = token_rows(env)
        assert stored["access_token"] == "access-2"


# -- the provider fails on another endpoint than the token endpoint --------------------


class FaultyIdP(FakeIdP):
    """The FakeIdP, with a fault per path, recording the timeout of every call."""

    def __init__(self) -> None:
        super().__init__()
        self.faults: dict[str, t.Callable[[], requests.Response]] = {}
        self.timeouts: list[t.Any] = []

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: t.Any
    ) -> requests.Response:
        self.timeouts.append(kwargs.get("timeout"))
        path = (request.path_url or "").split("?")[0]
        fault = self.faults.get(path)
        if fault is None:
            return super().send(request, **kwargs)
        self.calls.append(path)
        r = fault()
        r.request = request
        r.url = request.url or ""
        return r


def raising(exc: Exception) -> t.Callable[[], requests.Response]:
    def fault() -> requests.Response:
        raise exc

    return fault


FAULTS: dict[str, tuple[t.Callable[[], requests.Response], int]] = {
    "down": (raising(requests.ConnectionError("refused")), 503),
    "slow": (raising(requests.ReadTimeout("slow")), 504),
    "slow to connect": (raising(requests.ConnectTimeout("slow")), 504),
    "500 page": (
        lambda: response(500, raw=b"<h1>oops</h1>", content_type="text/html"),
        502,
    ),
    "not JSON": (lambda: response(200, raw=b"{nope", content_type="text/plain"), 502),
    "a JSON list": (lambda: response(200, [1, 2]), 502),
    "huge": (lambda: response(200, raw=b"[" + b"1," * 2_000_000 + b"1]"), 502),
}
ENDPOINTS = {
    "discovery": "/.well-known/openid-configuration",
    "jwks": "/jwks",
    "userinfo": "/userinfo",
}


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_provider_failing_on_an_endpoint(endpoint: str, fault: str) -> None:
    idp = FaultyIdP()
    site = make_site(idp, OAUTHCLIENT_TIMEOUT=2.5)
    client = site.client()
    answer, status = FAULTS[fault]
    idp.faults[ENDPOINTS[endpoint]] = answer
    if endpoint == "discovery":
        # Needed to build the authorization URL: the login can't even start.
        r = client.get(
            "/login/corp", headers={"Accept": "application/json"}, base_url=BASE_URL
        )
    else:
        params = start_login(client)
        idp.nonces["the-code"] = params["nonce"]
        r = client.get(
            "/login/corp/authorized",
            query_string={"state": params["state"], "code": "the-code", "iss": ISSUER},
            headers={"Accept": "application/json"},
            base_url=BASE_URL,
        )
    assert r.status_code == status, r.json
    assert r.json is not None and "error_description" in r.json
    assert ENDPOINTS[endpoint] in idp.calls
    assert user_of(client) is None
    assert site.logins == []
    assert site.storage.get("corp", user="user-1") is None
    # Every call to the provider carried the configured timeout.
    assert idp.timeouts and set(idp.timeouts) == {2.5}


# -- a real provider over loopback that stalls or trickles ----------------------------


class StallingServer:
    """A TCP server on loopback that accepts connections and then: ``silent``,
    never answers; ``trickle``, sends headers and then one byte every 50 ms;
    ``endless``, streams a body without end as fast as it can."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def answer(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            try:
                if self.mode == "silent":
                    self.stop.wait(10)
                    return
                # A length within the caps (trickle) or none at all (endless):
                # the body itself has to be read to find out.
                length = b"Content-Length: 1000\r\n" if self.mode == "trickle" else b""
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Connection: close\r\n" + length + b"\r\n"
                )
                while not self.stop.is_set():
                    if self.mode == "trickle":
                        conn.sendall(b" ")
                        self.sent += 1
                        time.sleep(0.05)
                    else:
                        conn.sendall(b" " * 65536)
                        self.sent += 65536
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join()


class Redirecting(FakeIdP):
    """The FakeIdP, but one path is served by a real server over loopback."""

    def __init__(self, path: str, port: int) -> None:
        super().__init__()
        self.path = path
        self.port = port
        self.real = HTTPAdapter(max_retries=0)

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: t.Any
    ) -> requests.Response:
        if (request.path_url or "").split("?")[0] != self.path:
            return super().send(request, **kwargs)
        self.calls.append(self.path)
        request.url = f"http://127.0.0.1:{self.port}{self.path}"
        return self.real.send(request, **kwargs)


@pytest.fixture
def stalling(request: pytest.FixtureRequest) -> t.Iterator[StallingServer]:
    server = StallingServer(request.param)
    yield server
    server.close()


@pytest.mark.parametrize(
    ("stalling", "path", "status"),
    [
        ("silent", "/token", 504),
        ("trickle", "/token", 504),
        ("endless", "/token", 502),
        ("silent", "/userinfo", 504),
        ("trickle", "/userinfo", 504),
        ("endless", "/userinfo", 502),
    ],
    indirect=["stalling"],
)
def test_stalling_provider_over_loopback(
    stalling: StallingServer, path: str, status: int
) -> None:
    idp = Redirecting(path, stalling.port)
    site = make_site(idp, OAUTHCLIENT_TIMEOUT=TIMEOUT)
    client = site.client()
    params = start_login(client)
    started = time.monotonic()
    r = complete(client, idp, params)
    elapsed = time.monotonic() - started
    assert r.status_code == status
    assert elapsed < TIMEOUT * 4  # the configured timeout, not the server's pace
    # An endless body is a 502 (the cap), not a 504 (the deadline): it was
    # dropped as soon as it passed the cap, while streaming in.
    assert user_of(client) is None
    assert site.logins == []


# -- oversized answers, counted byte by byte ------------------------------------------


@pytest.fixture
def site() -> Site:
    return make_site()


class Endless(io.RawIOBase):
    """A response body without end, counting what was read of it."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: t.Any) -> int:
        size = len(buffer)
        buffer[:size] = b"x" * size
        self.read_bytes += size
        return size


def endless_response(body: Endless) -> requests.Response:
    r = response(200)
    r.raw = body
    return r


def test_oversized_token_response_is_refused_while_streaming(site: Site) -> None:
    body = Endless()
    site.idp.token_handler = lambda request: endless_response(body)
    client = site.client()
    r = complete(client, site.idp, start_login(client))
    assert r.status_code == 502
    assert MAX_TOKEN_RESPONSE_BYTES < body.read_bytes < MAX_TOKEN_RESPONSE_BYTES * 2
    assert user_of(client) is None


def test_oversized_userinfo_is_refused_while_streaming(site: Site) -> None:
    body = Endless()
    site.idp.userinfo_handler = lambda request: endless_response(body)
    client = site.client()
    r = complete(client, site.idp, start_login(client))
    assert r.status_code == 502
    assert body.read_bytes < MAX_USERINFO_RESPONSE_BYTES * 2
    assert user_of(client) is None


def test_oversized_refresh_response_is_refused_and_the_token_kept(
    site: Site,
) -> None:
    client = site.client()
    log_in(site, client)
    old = site.storage.get("corp", user="user-1")
    assert old is not None
    site.storage.set("corp", {**old, "expires_at": time.time() - 10}, user="user-1")
    body = Endless()
    site.idp.token_handler = lambda request: endless_response(body)
    r = client.get("/api", headers={"Accept": "application/json"}, base_url=BASE_URL)
    assert r.status_code == 502
    assert body.read_bytes < MAX_TOKEN_RESPONSE_BYTES * 2
    kept = site.storage.get("corp", user="user-1")
    assert kept is not None and kept["refresh_token"] == old["refresh_token"]


def test_api_responses_are_not_capped() -> None:
    """The cap is for token and profile answers only: a large API download is the
    app's business."""
    site = make_site()

    @site.app.get("/download")
    def download() -> t.Any:
        return {"size": len(site.oauth.corp.get("blob").content)}

    client = site.client()
    log_in(site, client)
    blob = b"y" * (3 * MAX_USERINFO_RESPONSE_BYTES)
    site.idp.api_handler = lambda request: response(
        200, raw=blob, content_type="application/octet-stream"
    )
    r = client.get("/download", base_url=BASE_URL)
    assert r.json == {"size": len(blob)}
