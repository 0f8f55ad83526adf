"""What every benchmarked app shares: its settings from the environment and the two
test-only endpoints the runner needs.

``GET /_bench/info``
    The worker's pid, so the runner can read its memory. Every response also
    carries it in ``X-Bench-Pid``, so the storms can count the workers they reach.
``GET /_bench/modules``
    The names of the modules the worker has loaded (``sys.modules``), and, when the
    worker runs with tracemalloc on (``PYTHONTRACEMALLOC``), the memory allocated so
    far by the code of each top-level package: what the memory scenario reports.
``POST /_bench/expire``
    Mark the logged-in user's stored token expired (``expires_at`` in the past), as
    if its lifetime had run out. Each app does it on its own token storage, the way
    that library stores tokens; it is the only write the runner makes outside the
    apps' normal flows. Logins are always real ones through each app.
"""

from __future__ import annotations

import os
import sys
import time
import typing as t

from flask import Flask
from flask import jsonify

#: Seconds into the past that ``/_bench/expire`` moves ``expires_at``: beyond every
#: library's refresh leeway (Authlib's is 60 s).
EXPIRED_BY = 600


class Settings:
    """The environment of one app process."""

    def __init__(self) -> None:
        env = os.environ
        self.provider_url = env.get("BENCH_PROVIDER_URL", "http://127.0.0.1:5001")
        self.provider_url = self.provider_url.rstrip("/")
        self.database_url = env.get("BENCH_DATABASE_URL", "sqlite://")
        self.client_id = env.get("BENCH_CLIENT_ID", "dev-client")
        self.client_secret = env.get("BENCH_CLIENT_SECRET", "dev-secret")
        self.secret_key = env.get("BENCH_SECRET_KEY", "benchmark secret key")
        self.floor_token = env.get("BENCH_FLOOR_TOKEN", "")
        # The same scopes for every app, so the provider does the same work.
        self.scope = ["openid", "email", "profile", "offline_access"]

    @property
    def metadata_url(self) -> str:
        return f"{self.provider_url}/.well-known/openid-configuration"

    @property
    def userinfo_url(self) -> str:
        return f"{self.provider_url}/userinfo"


def flask_config(settings: Settings) -> dict[str, t.Any]:
    """The Flask config every app with a database starts from."""
    return {
        "SECRET_KEY": settings.secret_key,
        "SQLALCHEMY_DATABASE_URI": settings.database_url,
    }


def expired(token: dict[str, t.Any]) -> dict[str, t.Any]:
    """``token`` with an ``expires_at`` in the past."""
    token = dict(token)
    token["expires_at"] = time.time() - EXPIRED_BY
    if "expires_in" in token:
        token["expires_in"] = -EXPIRED_BY
    return token


def install(app: Flask, expire: t.Callable[[], bool] | None = None) -> None:
    """Add ``/_bench/info`` and, for apps with tokens, ``/_bench/expire``.

    :param expire: marks the logged-in user's token expired; returns whether there
        was one.
    """

    pid = str(os.getpid())

    @app.after_request
    def bench_pid(response: t.Any) -> t.Any:
        # Which worker answered: the storms count the processes they reached.
        response.headers["X-Bench-Pid"] = pid
        return response

    @app.get("/_bench/info")
    def bench_info() -> t.Any:
        return jsonify(pid=os.getpid())

    @app.get("/_bench/modules")
    def bench_modules() -> t.Any:
        return jsonify(
            pid=os.getpid(), modules=sorted(sys.modules), traced=traced_by_package()
        )

    if expire is not None:

        @app.post("/_bench/expire")
        def bench_expire() -> t.Any:
            if not expire():
                return jsonify(error="no token"), 404
            return jsonify(expired=True)


def traced_by_package() -> dict[str, int] | None:
    """Bytes allocated and still alive, by the top-level package of the code that
    allocated them (the innermost frame), or ``None`` when tracemalloc is off."""
    import tracemalloc

    if not tracemalloc.is_tracing():
        return None
    out: dict[str, int] = {}
    for stat in tracemalloc.take_snapshot().statistics("filename"):
        package = _package(stat.traceback[0].filename)
        out[package] = out.get(package, 0) + stat.size
    return out


def _package(filename: str) -> str:
    """``sqlalchemy`` for ``.../site-packages/sqlalchemy/orm/query.py``; the
    standard library's modules count as ``stdlib``, the rest as ``<other>``."""
    if filename.startswith("<"):
        return "<frozen>" if "frozen" in filename else filename
    parts = filename.replace(os.sep, "/").split("/")
    if "site-packages" in parts:
        rest = parts[parts.index("site-packages") + 1 :]
        return rest[0].removesuffix(".py") if rest else "<other>"
    for name in ("flask_oauthclient", "benchmarks"):
        if name in parts:
            return name
    if "lib" in parts and any(p.startswith("python3") for p in parts):
        return "stdlib"
    return "<other>"


def userinfo_response(response: t.Any) -> t.Any:
    """What every protected view answers: the userinfo JSON, or 502 with the
    provider's status when the call failed."""
    if response.status_code != 200:
        return jsonify(error="provider", status=response.status_code), 502
    return jsonify(response.json())
