"""``python -m benchmarks.ab``: Flask-OAuthClient against variants of itself, side by
side in one run: login throughput and the protected call of the ``ours`` app, once
per package variant (and the floor, for scale).

A variant is a directory holding a ``flask_oauthclient`` package (a copy of the
checkout with one change, say), put first on the app's ``PYTHONPATH``:

.. code-block:: text

    $ git archive HEAD~1 flask_oauthclient | tar -x -C /tmp/before
    $ python -m benchmarks.ab --variant before=/tmp/before

The checkout itself is the variant ``tree``. Each variant runs on a database of
its own, with the same plan as ``python -m benchmarks`` (``--quick`` for less): an
SQLite file, or with ``--postgres-url`` a schema of its own in that database
(``bench_ab_<name>``, dropped afterwards).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import typing as t
from pathlib import Path

from benchmarks import scenarios
from benchmarks.client import Browser
from benchmarks.client import Connection
from benchmarks.servers import app_env
from benchmarks.servers import init_db
from benchmarks.servers import ROOT
from benchmarks.servers import Server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ab", description=__doc__
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a directory with a flask_oauthclient package (repeatable)",
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument(
        "--postgres-url",
        help="run on PostgreSQL (a schema per variant) instead of SQLite files",
    )
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    plan = scenarios.Plan.quick() if args.quick else scenarios.Plan()
    variants: dict[str, str | None] = {"tree": None}
    for spec in args.variant:
        name, _, path = spec.partition("=")
        if not name or not path or not (Path(path) / "flask_oauthclient").is_dir():
            parser.error(f"--variant {spec!r}: NAME=DIR with DIR/flask_oauthclient")
        variants[name] = str(Path(path).resolve())

    from flask_oauthclient.testing.devprovider import DevProvider

    dev = DevProvider(auto_login="user")
    data: dict[str, t.Any] = {"load_average": {"start": os.getloadavg()}}
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp, dev.serve() as url:
        logs = args.results / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        floor_token = dev.mint_token("user")["access_token"]
        servers: dict[str, Server] = {}
        api_servers: dict[str, Server] = {}
        browsers: dict[str, Browser] = {}
        with contextlib.ExitStack() as stack:
            runs = {} if args.no_floor else {"floor": ("floor", None)}
            runs.update({name: ("ours", path) for name, path in variants.items()})
            for name, (app, path) in runs.items():
                database = scenarios.sqlite_url(Path(tmp), name)
                if args.postgres_url:
                    database = _pg_schema(args.postgres_url, f"bench_ab_{name}")
                    stack.callback(_pg_drop, args.postgres_url, f"bench_ab_{name}")
                env = app_env(app, url, database, BENCH_FLOOR_TOKEN=floor_token)
                if path:
                    env["PYTHONPATH"] = os.pathsep.join([path, env["PYTHONPATH"]])
                init_db(app, env)
                servers[name] = stack.enter_context(
                    Server(app, env, workers=1, threads=16, log_dir=logs)
                )
                api_servers[name] = stack.enter_context(
                    Server(app, env, workers=1, threads=16, log_dir=logs)
                )
                browser = Browser(Connection(servers[name].base_url), Connection(url))
                browser.login()
                browsers[name] = Browser(
                    Connection(api_servers[name].base_url),
                    browser.provider,
                    cookies=dict(browser.cookies),
                )
            print("Protected call", file=sys.stderr, flush=True)
            data["protected"] = scenarios.protected_call(
                api_servers, browsers, dev, plan
            )
            print("Logins", file=sys.stderr, flush=True)
            data["logins"] = scenarios.login_throughput(servers, url, dev, plan)
    data["load_average"]["end"] = os.getloadavg()
    lines = [
        f"load average: start {data['load_average']['start']}, end "
        f"{data['load_average']['end']}"
    ]
    first = "floor" if "floor" in data["logins"] else "tree"
    for name in data["logins"]:
        login = data["logins"][name]
        call = data["protected"][name]
        lines.append(
            f"{name:12} logins/s {login['per_second']:6.1f}"
            f" ({login['per_second'] / data['logins'][first]['per_second']:.2f}x)"
            f"  CPU/login {login['worker_cpu_ms_per_login']:5.1f} ms"
            f"  protected {call['median_ms']:5.2f} ms"
            f" ({call['median_ms'] / data['protected'][first]['median_ms']:.2f}x)"
            f"  CPU/call {call['worker_cpu_ms_per_call']:5.2f} ms"
            f"  failed logins {login['failed']}"
        )
    print("\n".join(lines))
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "ab.json").write_text(json.dumps(data, indent=2, default=str))
    return 0


def _pg_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _pg_schema(url: str, schema: str) -> str:
    """The URL of ``url``'s database with ``schema`` (created) first on the search
    path."""
    import psycopg

    with psycopg.connect(_pg_dsn(url), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options=-csearch_path%3D{schema}"


def _pg_drop(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(_pg_dsn(url), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    sys.exit(main())
