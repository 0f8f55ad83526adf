"""Serving the apps: gunicorn on free loopback ports, stopped by pid."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import typing as t
from pathlib import Path

#: The benchmarked apps: key → (module, label). The floor comes first.
APPS: dict[str, tuple[str, str]] = {
    "floor": ("benchmarks.apps.floor", "Floor (requests.Session)"),
    "ours": ("benchmarks.apps.ours", "Flask-OAuthClient"),
    "flask_dance": ("benchmarks.apps.flask_dance_app", "Flask-Dance"),
    "authlib": ("benchmarks.apps.authlib_app", "Authlib"),
}
PEERS = ("flask_dance", "authlib")
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def app_env(
    app: str, provider_url: str, database_url: str, **extra: str
) -> dict[str, str]:
    env = dict(os.environ)
    # Bytecode caches as in a deployment: written once, then read.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        BENCH_PROVIDER_URL=provider_url,
        BENCH_DATABASE_URL=database_url,
        PYTHONPATH=os.pathsep.join(
            p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p
        ),
    )
    env.update(extra)
    return env


def init_db(app: str, env: dict[str, str]) -> None:
    """Drop and create the app's tables, in a process of its own."""
    module = APPS[app][0]
    subprocess.run(
        [sys.executable, "-c", f"import {module} as m; m.init_db()"],
        env=env,
        cwd=ROOT,
        check=True,
    )


class Server:
    """One app under gunicorn (``gthread`` workers)."""

    def __init__(
        self,
        app: str,
        env: dict[str, str],
        *,
        workers: int = 1,
        threads: int = 16,
        worker_connections: int | None = None,
        log_dir: Path,
    ) -> None:
        self.app = app
        self.env = env
        self.workers = workers
        self.threads = threads
        self.worker_connections = worker_connections
        self.port = free_port()
        self.log_path = log_dir / f"gunicorn-{app}-w{workers}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Server:
        module = APPS[self.app][0]
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--worker-class",
            "gthread",
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
            "--keep-alive",
            "30",
            "--timeout",
            "120",
            "--graceful-timeout",
            "5",
            "--log-level",
            "warning",
        ]
        if self.worker_connections:
            cmd += ["--worker-connections", str(self.worker_connections)]
        cmd.append(f"{module}:app")
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            cmd, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout
        pids: set[int] = set()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"gunicorn for {self.app} exited; see {self.log_path}"
                )
            try:
                pids.add(self.info()["pid"])
            except (OSError, http.client.HTTPException, ValueError):
                time.sleep(0.05)
                continue
            if len(self.worker_pids()) >= self.workers:
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"gunicorn for {self.app} did not start; see {self.log_path}"
        )

    def info(self) -> dict[str, t.Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", "/_bench/info")
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise ValueError(response.status)
            return t.cast(dict[str, t.Any], json.loads(body))
        finally:
            conn.close()

    def worker_pids(self) -> list[int]:
        """The worker processes: the children of the gunicorn master."""
        assert self.proc is not None
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except OSError:
            return []

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """The resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for {pid}")
