"""``python -m benchmarks``: run every scenario against the floor, Flask-OAuthClient,
Flask-Dance and Authlib, side by side, and write the results."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import typing as t
from pathlib import Path

from benchmarks import report
from benchmarks import scenarios
from benchmarks.client import Browser
from benchmarks.client import Connection
from benchmarks.servers import app_env
from benchmarks.servers import APPS
from benchmarks.servers import init_db
from benchmarks.servers import ROOT
from benchmarks.servers import Server

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
RESULTS = ROOT / "benchmarks" / "results"
TOKEN_APPS = ["ours", "flask_dance", "authlib"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="fewer repeats: a smoke run (~1 minute)"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="database of the process storm (env BENCH_POSTGRES_URL)",
    )
    parser.add_argument(
        "--no-postgres", action="store_true", help="skip the process storm"
    )
    parser.add_argument(
        "--token-delay",
        type=float,
        default=None,
        help="seconds the provider's token endpoint sleeps during storms (0.020)",
    )
    parser.add_argument(
        "--no-reuse-detection",
        action="store_true",
        help="a spent refresh token does not revoke the grant at the provider",
    )
    parser.add_argument(
        "--only",
        choices=["protected", "storm", "login", "import"],
        action="append",
        help="run only these scenarios (repeatable)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--docs",
        action="store_true",
        help="also write docs/performance.rst and docs/_static/performance.png",
    )
    return parser.parse_args(argv)


def postgres_version(url: str) -> str | None:
    try:
        import psycopg
    except ImportError:
        return None
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else "?"
    except Exception:
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = scenarios.Plan.quick() if args.quick else scenarios.Plan()
    if args.token_delay is not None:
        plan.storm_token_delay = args.token_delay
    only = set(args.only or ["protected", "storm", "login", "import"])
    pg_version = None if args.no_postgres else postgres_version(args.postgres_url)

    from flask_oauthclient.testing.devprovider import DevProvider

    started = time.perf_counter()
    data: dict[str, t.Any] = {
        "environment": report.environment(pg_version),
        "plan": plan.__dict__,
        "settings": {
            "provider": "flask_oauthclient.testing.DevProvider (in the runner process)",
            "rotate_refresh_tokens": True,
            "revoke_grant_on_reuse": not args.no_reuse_detection,
            "storm_token_delay_s": plan.storm_token_delay,
            "thread_server": "gunicorn gthread, 1 worker x 16 threads, SQLite file",
            "process_server": "gunicorn gthread, 4 workers x 4 threads"
            " (--worker-connections 4), PostgreSQL",
        },
    }
    args.results.mkdir(parents=True, exist_ok=True)
    dev = DevProvider(
        auto_login="user", revoke_grant_on_reuse=not args.no_reuse_detection
    )
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, dev.serve() as url:
        tmpdir = Path(tmp)
        logs = args.results / "logs"
        logs.mkdir(exist_ok=True)
        floor_token = dev.mint_token("user")["access_token"]

        def env_for(app: str, database_url: str) -> dict[str, str]:
            return app_env(app, url, database_url, BENCH_FLOOR_TOKEN=floor_token)

        record_load(data, "start")
        if only & {"protected", "login"}:
            log(
                "Scenario 1 and 3 servers: gunicorn gthread -w 1 --threads 16, SQLite;"
                " per app one for logins and one for API calls only"
            )
            login_servers: dict[str, Server] = {}
            api_servers: dict[str, Server] = {}
            bare_server: Server | None = None
            with contextlib.ExitStack() as stack:
                for app in APPS:
                    env = env_for(app, scenarios.sqlite_url(tmpdir, f"{app}-main"))
                    init_db(app, env)
                    login_servers[app] = stack.enter_context(
                        Server(app, env, workers=1, threads=16, log_dir=logs)
                    )
                    # The same database and secret key: the login's cookie works
                    # there, and its worker never handles a login.
                    api_servers[app] = stack.enter_context(
                        Server(app, env, workers=1, threads=16, log_dir=logs)
                    )
                    if app == "floor":  # the bare series, in a worker of its own
                        bare_server = stack.enter_context(
                            Server(app, env, workers=1, threads=16, log_dir=logs)
                        )
                browsers: dict[str, Browser] = {}
                for app, server in login_servers.items():
                    browser = Browser(Connection(server.base_url), Connection(url))
                    browser.login()  # a real login through each app
                    browser.app.close()
                    browsers[app] = Browser(
                        Connection(api_servers[app].base_url),
                        browser.provider,
                        cookies=dict(browser.cookies),
                    )
                if "protected" in only:
                    log("Scenario 1: protected call (workers that handled no login)")
                    record_load(data, "protected call")
                    first = scenarios.first_call(api_servers, browsers)
                    series = dict(api_servers)
                    if bare_server is not None:
                        series[scenarios.BARE] = bare_server
                    series_browsers = {**browsers, scenarios.BARE: browsers["floor"]}
                    data["protected"] = scenarios.protected_call(
                        series, series_browsers, dev, plan
                    )
                    data["memory_after_scenario_1"] = scenarios.memory(api_servers)
                    log(
                        f"Scenario 1: worker memory after {plan.memory_calls}"
                        " protected calls"
                    )
                    # The first call, then scenario 1's.
                    calls = {
                        app: data["protected"][app]["calls_made"] + 1
                        for app in api_servers
                    }
                    data["memory"] = scenarios.api_worker_memory(
                        api_servers, browsers, plan, calls, first
                    )
                    data["memory_note"] = (
                        f"API workers (never handled a login) after"
                        f" {plan.memory_calls} protected calls"
                    )
                if "login" in only:
                    log("Scenario 3: login throughput")
                    record_load(data, "logins")
                    data["logins"] = scenarios.login_throughput(
                        login_servers, url, dev, plan
                    )
                    data["memory_after_logins"] = scenarios.memory(login_servers)

        if "storm" in only:
            record_load(data, "storms")
            log(
                f"Scenario 2: refresh storm, {plan.storm_concurrency} threads,"
                " 1 worker, SQLite"
            )
            data["storm_threads"] = {}
            for app in TOKEN_APPS:
                env = env_for(app, scenarios.sqlite_url(tmpdir, f"{app}-storm"))
                init_db(app, env)
                with Server(app, env, workers=1, threads=16, log_dir=logs) as server:
                    result = scenarios.refresh_storm(app, server, url, dev, plan)
                data["storm_threads"][app] = result
                log(f"  {app}: {_storm_line(result)}")
            if pg_version is None:
                reason = (
                    "--no-postgres" if args.no_postgres else "PostgreSQL unreachable"
                )
                data["storm_processes"] = {"skipped": reason}
                log(f"Scenario 2 with processes skipped: {reason}")
            else:
                log(
                    f"Scenario 2: refresh storm, {plan.storm_concurrency} requests,"
                    " 4 worker processes, PostgreSQL"
                )
                data["storm_processes"] = {}
                for app in TOKEN_APPS:
                    env = env_for(app, args.postgres_url)
                    init_db(app, env)
                    with Server(
                        app,
                        env,
                        workers=4,
                        threads=4,
                        worker_connections=4,
                        log_dir=logs,
                    ) as server:
                        result = scenarios.refresh_storm(app, server, url, dev, plan)
                    data["storm_processes"][app] = result
                    log(f"  {app}: {_storm_line(result)}")

        if "import" in only:
            log("Scenario 4: cold import")
            record_load(data, "imports")
            env = app_env(
                "floor",
                "http://127.0.0.1:9",
                "sqlite://",
                BENCH_FLOOR_TOKEN="x",
            )
            data["imports"] = scenarios.import_time(list(APPS), plan, env)
        data["provider_stats"] = dev.stats.snapshot()

    record_load(data, "end")
    data["duration_s"] = round(time.perf_counter() - started, 1)
    missing = {"protected", "logins", "imports", "memory"} - set(data)
    if missing:
        log(f"Partial run (no {', '.join(sorted(missing))}): JSON only.")
        path = args.results / "partial.json"
        import json

        path.write_text(json.dumps(data, indent=2, default=str))
        log(f"Wrote {path}")
        return 0
    paths = report.write_results(data, args.results)
    table = report.text_table(report.rows(data))
    print(table)
    log(f"\nWrote {paths['json']}, {paths['table']}, {paths['chart']}")
    log(f"Run took {data['duration_s']} s")
    if args.docs:
        from benchmarks import docs_page

        written = docs_page.write(data, ROOT / "docs")
        log(f"Wrote {', '.join(str(p) for p in written)}")
    return 0


def _storm_line(result: dict[str, t.Any]) -> str:
    return (
        f"refresh calls {result['refresh_calls']} (max {result['refresh_calls_max']}),"
        f" failed {result['failed_total']}/{result['requests_total']},"
        f" token works after {result['token_works_after']}/{result['repeats_run']},"
        f" workers reached {result['workers_reached']}"
    )


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def record_load(data: dict[str, t.Any], moment: str) -> None:
    """Wait for the machine to be quiet, then keep (and print) the load average at
    ``moment``: other work on the machine shows in every figure."""
    waited, idle = settle()
    if waited is not None:
        data.setdefault("settle", {})[moment] = {"waited_s": waited, "idle": idle}
        log(f"  waited {waited} s for idle CPUs ({moment}): {idle:.0%} idle")
    load = [round(x, 2) for x in os.getloadavg()]
    data.setdefault("load_average", {})[moment] = load
    log(f"  load average ({moment}): {', '.join(map(str, load))}")


#: How idle the CPUs must be (over one second) before a scenario starts, and how
#: long to wait for that at most.
QUIET_IDLE = 0.85
QUIET_MAX_WAIT = 60.0


def settle() -> tuple[float | None, float]:
    """Wait until the CPUs are at least :data:`QUIET_IDLE` idle over one second (at
    most :data:`QUIET_MAX_WAIT` seconds), so that what the previous scenario left
    running (PostgreSQL's background work after the storms, exiting workers) does
    not land in the next one. Returns the seconds waited and the last idle share;
    ``(None, nan)`` where ``/proc/stat`` does not exist."""
    if not os.path.exists("/proc/stat"):
        return None, float("nan")
    started = time.monotonic()
    while True:
        idle = _idle_share(1.0)
        waited = time.monotonic() - started
        if idle >= QUIET_IDLE or waited >= QUIET_MAX_WAIT:
            return round(waited, 1), idle


def _idle_share(seconds: float) -> float:
    """The share of CPU time spent idle (or waiting for I/O) over ``seconds``."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return fields[3] + fields[4], sum(fields)

    idle_before, total_before = sample()
    time.sleep(seconds)
    idle_after, total_after = sample()
    return (idle_after - idle_before) / max(1, total_after - total_before)


if __name__ == "__main__":
    sys.exit(main())
