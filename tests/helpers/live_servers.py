"""Serving apps for real in tests: werkzeug's threaded server in a thread of the test
process, gunicorn in processes of its own, a PostgreSQL schema or a MariaDB database
per test, and a browser-like login through the development provider.

Used by ``test_refresh_storm.py`` and ``test_deployment.py``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import typing as t
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import requests
import sqlalchemy as sa
from flask import Flask
from werkzeug.serving import make_server

from flask_oauthclient.testing import DevProvider

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent

#: The access log line: the worker's pid, the request line and the status.
_ACCESS_LOG_FORMAT = 'access pid=%(p)s "%(r)s" %(s)s'
_ACCESS_LINE = re.compile(r'access pid=<(\d+)> "([^"]*)" (\d{3})')


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_thread(app: Flask) -> t.Iterator[str]:
    """Serve ``app`` with werkzeug's threaded server (a thread per request) on a free
    loopback port, from a background thread; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class Gunicorn:
    """``python -m gunicorn`` serving ``app_spec`` on a free loopback port, its output
    (error and access log, with each request's worker pid) in ``log_path``; stopped
    by its pid."""

    def __init__(
        self,
        app_spec: str,
        env: t.Mapping[str, str],
        log_path: Path,
        *,
        workers: int = 4,
        worker_class: str = "gthread",
        threads: int = 4,
    ) -> None:
        self.app_spec = app_spec
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.workers = workers
        self.worker_class = worker_class
        self.threads = threads
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Gunicorn:
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--worker-class",
            self.worker_class,
            "--threads",
            str(self.threads),
            "--timeout",
            "60",
            "--graceful-timeout",
            "5",
            "--pythonpath",
            str(TESTS),
            "--access-logfile",
            "-",
            "--access-logformat",
            _ACCESS_LOG_FORMAT,
        ]
        if _gunicorn_has("control_socket_disable"):
            # Newer gunicorns open a control socket at a fixed path by default, which
            # several servers at once would share.
            cmd.append("--no-control-socket")
        cmd.append(self.app_spec)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited at start.\n{self.log_tail()}")
            if self.log().count("Booting worker") >= self.workers:
                try:
                    socket.create_connection(("127.0.0.1", self.port), 1).close()
                except OSError:
                    pass
                else:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gunicorn did not start in {timeout} s.\n{self.log_tail()}")

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        tail = "\n".join(self.log().splitlines()[-lines:])
        return f"--- {self.log_path} (last {lines} lines) ---\n{tail}"

    def access_log(self) -> list[tuple[int, str, int]]:
        """The requests served so far: (worker pid, method and path, status)."""
        return [
            (int(m.group(1)), m.group(2).rsplit(" ", 1)[0], int(m.group(3)))
            for m in _ACCESS_LINE.finditer(self.log())
        ]

    def served_by(self, path_prefix: str) -> Counter[int]:
        """How many requests for paths starting with ``path_prefix`` each worker pid
        answered."""
        return Counter(
            pid
            for pid, request, _ in self.access_log()
            if request.partition(" ")[2].startswith(path_prefix)
        )

    def pid_of(self, path: str, timeout: float = 5.0) -> int:
        """The worker that served the request for exactly ``path`` (with its query),
        once its access log line is written."""
        deadline = time.monotonic() + timeout
        while True:
            for pid, request, _ in self.access_log():
                if request.partition(" ")[2] == path:
                    return pid
            if time.monotonic() > deadline:
                raise LookupError(f"No request for {path} in the log.")
            time.sleep(0.05)

    def warm_up(self, path: str = "/", timeout: float = 60.0) -> set[int]:
        """Request ``path`` in bursts of concurrent requests on fresh connections
        until every worker answered once, or ``timeout``; return the pids that
        answered. (One request at a time would mostly reach the same worker.)"""
        deadline = time.monotonic() + timeout
        seen: set[int] = set()

        def get() -> None:
            try:
                requests.get(
                    self.base_url + path, headers={"Connection": "close"}, timeout=30
                ).close()
            except requests.RequestException:
                pass  # a worker still loading the app; the loop tries again

        while len(seen) < self.workers and time.monotonic() < deadline:
            burst = [threading.Thread(target=get) for _ in range(2 * self.workers)]
            for thread in burst:
                thread.start()
            for thread in burst:
                thread.join(40)
            seen = set(self.served_by(path))
        return seen


def _gunicorn_has(setting: str) -> bool:
    from gunicorn import config

    return any(s.name == setting for s in config.KNOWN_SETTINGS)


@contextmanager
def postgres_schema(url: str, prefix: str) -> t.Iterator[str]:
    """A PostgreSQL schema of its own for one test: yield ``url`` with a
    ``search_path`` of that schema (so apps with fixed table names don't collide with
    other tests in the same database); drop the schema and everything in it at the
    end."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
        try:
            scoped = sa.make_url(url).update_query_dict(
                {"options": f"-csearch_path={name}"}
            )
            yield scoped.render_as_string(hide_password=False)
        finally:
            with engine.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{name}" CASCADE')
    finally:
        engine.dispose()


@contextmanager
def mariadb_database(url: str, prefix: str) -> t.Iterator[str]:
    """A MariaDB (or MySQL) database of its own for one test, on the server of
    ``url``: yield a URL of that database (apps with fixed table names then don't
    collide with other tests); drop it and everything in it at the end."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{name}`")
        try:
            yield (
                sa.make_url(url)
                .set(database=name)
                .render_as_string(hide_password=False)
            )
        finally:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"DROP DATABASE `{name}`")
    finally:
        engine.dispose()


@contextmanager
def server_database(url: str, prefix: str) -> t.Iterator[str]:
    """:func:`postgres_schema` or :func:`mariadb_database`, after ``url``."""
    if sa.make_url(url).get_backend_name() in ("mysql", "mariadb"):
        with mariadb_database(url, prefix) as scoped:
            yield scoped
    else:
        with postgres_schema(url, prefix) as scoped:
            yield scoped


def log_in(
    base_url: str, dev: DevProvider, username: str, next: str
) -> tuple[requests.Session, requests.Response]:
    """Log a new browser-like session in as ``username`` through the development
    provider (which signs in at once as ``auto_login``), following every redirect;
    return the session and the response of ``next``."""
    session = requests.Session()
    dev.auto_login = username
    try:
        response = session.get(
            f"{base_url}/login/dev", params={"next": next}, timeout=30
        )
    except BaseException:
        session.close()
        raise
    finally:
        dev.auto_login = None
    return session, response
