"""A real Celery worker process for ``test_jobs.py``: started by the test on a
queue of its own, stopped by its pid (warm shutdown, then a kill)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import typing as t
import uuid
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent


class CeleryWorker:
    """``celery -A helpers.jobs_app worker`` with a thread pool, consuming only
    ``queue`` (a new name per worker, so that runs never take each other's
    tasks); its output in ``log_path``."""

    def __init__(
        self,
        env: t.Mapping[str, str],
        log_path: Path,
        *,
        broker_url: str,
        concurrency: int = 8,
    ) -> None:
        self.queue = f"jobs-{uuid.uuid4().hex[:12]}"
        self.broker_url = broker_url
        self.env = {
            **os.environ,
            **env,
            "JOBS_BROKER_URL": broker_url,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(TESTS), str(ROOT), os.environ.get("PYTHONPATH")) if p
            ),
        }
        self.log_path = log_path
        self.concurrency = concurrency
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> CeleryWorker:
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "helpers.jobs_app",
            "worker",
            "--queues",
            self.queue,
            "--hostname",
            f"{self.queue}@%h",
            "--pool",
            "threads",
            "--concurrency",
            str(self.concurrency),
            "--loglevel",
            "INFO",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"The worker exited at start.\n{self.log_tail()}")
            if " ready." in self.log():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"The worker did not start in {timeout} s.\n{self.log_tail()}"
        )

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # warm shutdown: running tasks finish
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        self._clean_broker()

    def _clean_broker(self) -> None:
        """Remove what the worker's queue left in Redis (its bindings, a queue
        with tasks nobody took)."""
        import redis

        client = redis.Redis.from_url(self.broker_url)
        try:
            client.delete(
                self.queue,
                f"_kombu.binding.{self.queue}",
                f"_kombu.binding_permanent.{self.queue}",
            )
        except redis.RedisError:
            pass
        finally:
            client.close()

    def __enter__(self) -> CeleryWorker:
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
