"""The four scenarios. Each returns plain data (JSON-ready); the report turns it
into medians, ratios and a table."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

from benchmarks.client import ACCEPT_JSON
from benchmarks.client import Browser
from benchmarks.client import Connection
from benchmarks.client import LoginFailed
from benchmarks.servers import APPS
from benchmarks.servers import cpu_seconds
from benchmarks.servers import ROOT
from benchmarks.servers import rss_bytes
from benchmarks.servers import Server

if t.TYPE_CHECKING:
    from flask_oauthclient.testing.devprovider import DevProvider


@dataclass
class Plan:
    """How much of everything a run does (``--quick`` makes it smaller)."""

    protected_warmup: int = 200
    protected_repeats: int = 10
    protected_calls: int = 200
    storm_repeats: int = 5
    storm_concurrency: int = 16
    storm_token_delay: float = 0.020
    login_warmup: int = 3
    login_repeats: int = 5
    login_seconds: float = 2.0
    login_concurrency: int = 4
    import_repeats: int = 11
    #: Protected calls each API worker has answered when its memory is read.
    memory_calls: int = 10_000
    #: Connections the calls beyond scenario 1's are sent on at once.
    memory_concurrency: int = 4

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            protected_warmup=50,
            protected_repeats=4,
            protected_calls=100,
            storm_repeats=2,
            login_warmup=2,
            login_repeats=3,
            login_seconds=1.0,
            import_repeats=3,
            memory_calls=2_000,
        )


def percentile(values: t.Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _rotated(items: list[str], n: int) -> list[str]:
    """The apps in a different order on every repeat, so that drift (CPU
    frequency, caches, the provider's growing token tables) hits them alike."""
    n %= len(items)
    return items[n:] + items[:n]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- 1. protected call ---------------------------------------------------------


def protected_call(
    servers: dict[str, Server],
    browsers: dict[str, Browser],
    dev: DevProvider,
    plan: Plan,
) -> dict[str, t.Any]:
    """Sequential ``GET /api`` through each app: the view loads the user and the
    token and calls the provider's userinfo with a fresh token.

    Each repeat sends the apps' calls in turn, one call each (the order rotates per
    repeat): whatever else loads the machine meanwhile weighs on every app alike.
    The worker's CPU time is read around the repeat, so every series needs a worker
    of its own. New provider connections are counted afterwards, in a pass per app
    (the provider counts them all together)."""
    apps = list(servers)
    if len({id(server) for server in servers.values()}) != len(apps):
        raise ValueError("every series needs a server (a worker) of its own")
    results: dict[str, t.Any] = {
        app: {"repeats": [], "errors": 0, "calls_made": 0} for app in apps
    }
    conns = {app: Connection(servers[app].base_url) for app in apps}

    def call(app: str) -> tuple[int, float]:
        headers = {**browsers[app].cookie_header(), **ACCEPT_JSON}
        start = time.perf_counter()
        reply = conns[app].request("GET", _api_path(app), headers)
        results[app]["calls_made"] += 1
        return reply.status, time.perf_counter() - start

    for app in apps:
        for _ in range(plan.protected_warmup):
            status, _ = call(app)
            if status != 200:
                raise RuntimeError(f"{app}: the protected view answered {status}")
    for repeat in range(plan.protected_repeats):
        order = _rotated(apps, repeat)
        for app in order:
            for _ in range(5):  # settle: connections open, caches warm
                call(app)
        latencies: dict[str, list[float]] = {app: [] for app in apps}
        errors = dict.fromkeys(apps, 0)
        cpu_before = {app: _worker_cpu(servers[app]) for app in apps}
        for _ in range(plan.protected_calls):
            for app in order:
                status, elapsed = call(app)
                latencies[app].append(elapsed)
                errors[app] += status != 200
        for app in apps:
            cpu_used = _worker_cpu(servers[app]) - cpu_before[app]
            results[app]["repeats"].append(
                {
                    "calls": plan.protected_calls,
                    "median_ms": statistics.median(latencies[app]) * 1000,
                    "p90_ms": percentile(latencies[app], 0.9) * 1000,
                    "mean_ms": statistics.fmean(latencies[app]) * 1000,
                    "errors": errors[app],
                    "worker_cpu_ms_per_call": cpu_used * 1000 / plan.protected_calls,
                }
            )
            results[app]["errors"] += errors[app]
        log(
            f"  protected call, repeat {repeat + 1}/{plan.protected_repeats}: "
            + ", ".join(
                f"{app} {results[app]['repeats'][-1]['median_ms']:.2f} ms"
                for app in apps
            )
        )
    for app in apps:
        before = dev.stats.snapshot()
        for _ in range(plan.protected_calls):
            call(app)
        after = dev.stats.snapshot()
        results[app]["connection_pass"] = {
            "calls": plan.protected_calls,
            "new_connections": after.get("connections", 0)
            - before.get("connections", 0),
            "userinfo_calls": after.get("userinfo", 0) - before.get("userinfo", 0),
        }
    for conn in conns.values():
        conn.close()
    for app in apps:
        reps = results[app]["repeats"]
        passed = results[app]["connection_pass"]
        results[app]["median_ms"] = statistics.median(r["median_ms"] for r in reps)
        results[app]["p90_ms"] = statistics.median(r["p90_ms"] for r in reps)
        results[app]["new_connections_per_1000"] = (
            1000 * passed["new_connections"] / passed["calls"]
        )
        results[app]["worker_cpu_ms_per_call"] = statistics.median(
            r["worker_cpu_ms_per_call"] for r in reps
        )
    return results


#: The floor's second series: its ``/bare`` view (no user, no database).
BARE = "bare"


def _api_path(app: str) -> str:
    return "/bare" if app == BARE else "/api"


def _worker_cpu(server: Server) -> float:
    """CPU seconds used so far by the server's workers (not by the provider or the
    runner): less sensitive than latency to other load on the machine."""
    return sum(cpu_seconds(pid) for pid in server.worker_pids())


def memory(servers: dict[str, Server]) -> dict[str, t.Any]:
    """Resident memory of each app's worker (the median over its workers)."""
    out = {}
    for app, server in servers.items():
        pids = server.worker_pids()
        out[app] = {"rss_mb": statistics.median(rss_bytes(p) for p in pids) / 2**20}
    return out


#: Packages and modules only a login (an ID token) or an encrypted token needs: a
#: worker that answered protected calls only should not have them.
LOGIN_ONLY = ("jwt", "cryptography", "flask_oauthclient.oidc", "authlib.jose")


def worker_modules(server: Server) -> list[str]:
    """The modules loaded in the server's (first) worker."""
    reply = Connection(server.base_url).request("GET", "/_bench/modules")
    return list(json.loads(reply.body)["modules"])


def module_summary(modules: t.Iterable[str]) -> dict[str, t.Any]:
    """How many modules of each top-level package, and the login-only ones."""
    modules = sorted(modules)
    packages: dict[str, int] = {}
    for name in modules:
        top = name.split(".")[0]
        packages[top] = packages.get(top, 0) + 1
    login_only = [
        m for m in modules if any(m == p or m.startswith(p + ".") for p in LOGIN_ONLY)
    ]
    return {"count": len(modules), "packages": packages, "login_only": login_only}


def api_worker_memory(
    servers: dict[str, Server],
    browsers: dict[str, Browser],
    plan: Plan,
    calls_made: dict[str, int],
    first_call_modules: dict[str, dict[str, t.Any]],
) -> dict[str, t.Any]:
    """Resident memory of each API worker (one that never handled a login) after
    ``plan.memory_calls`` protected calls: the calls beyond scenario 1's are sent
    on ``plan.memory_concurrency`` connections at once. Also the modules the worker
    holds then, and those the first protected call loaded."""
    out: dict[str, t.Any] = {}
    for app, server in servers.items():
        missing = max(0, plan.memory_calls - calls_made.get(app, 0))
        headers = {**browsers[app].cookie_header(), **ACCEPT_JSON}
        errors = _send_calls(server, headers, missing, plan.memory_concurrency)
        pids = server.worker_pids()
        modules = worker_modules(server)
        out[app] = {
            "rss_mb": statistics.median(rss_bytes(p) for p in pids) / 2**20,
            "calls": calls_made.get(app, 0) + missing,
            "errors": errors,
            "modules": module_summary(modules),
            **first_call_modules.get(app, {}),
        }
    return out


def _send_calls(
    server: Server, headers: dict[str, str], calls: int, concurrency: int
) -> int:
    """Send ``calls`` protected calls on ``concurrency`` keep-alive connections at
    once; return how many failed."""
    counter = iter(range(calls))
    lock = threading.Lock()
    errors = [0]

    def send() -> None:
        conn = Connection(server.base_url)
        try:
            while True:
                with lock:
                    if next(counter, None) is None:
                        return
                if conn.request("GET", "/api", headers).status != 200:
                    with lock:
                        errors[0] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=send) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors[0]


def first_call(
    servers: dict[str, Server], browsers: dict[str, Browser]
) -> dict[str, dict[str, t.Any]]:
    """One protected call to each fresh API worker, with the worker's memory and
    modules before and after it: what the first call loads."""
    out: dict[str, dict[str, t.Any]] = {}
    for app, server in servers.items():
        pid = server.worker_pids()[0]
        before = worker_modules(server)
        rss_before = rss_bytes(pid)
        reply = Connection(server.base_url).request(
            "GET", "/api", {**browsers[app].cookie_header(), **ACCEPT_JSON}
        )
        if reply.status != 200:
            raise RuntimeError(f"{app}: the protected view answered {reply.status}")
        after = worker_modules(server)
        out[app] = {
            "rss_mb_before_first_call": rss_before / 2**20,
            "rss_mb_after_first_call": rss_bytes(pid) / 2**20,
            "modules_at_start": module_summary(before)["count"],
            # The runner's own endpoint loads tracemalloc's modules: not the app's.
            "first_call_loaded": sorted(
                m for m in set(after) - set(before) if "tracemalloc" not in m
            ),
        }
    return out


# -- 2. refresh storm ----------------------------------------------------------


def _storm_once(
    server: Server, browser: Browser, dev: DevProvider, plan: Plan
) -> dict[str, t.Any]:
    browser.login()
    reply = browser.get_app("/api", ACCEPT_JSON)
    if reply.status != 200:
        raise RuntimeError(f"{server.app}: the token does not work after login")
    browser.post_app("/_bench/expire")
    browser.app.close()  # the storm's requests come on connections of their own
    dev.expire_access_tokens()
    cookies = {**browser.cookie_header(), **ACCEPT_JSON}
    n = plan.storm_concurrency
    barrier = threading.Barrier(n)
    replies: list[tuple[int, str | None, float]] = [(0, None, 0.0)] * n

    def one(i: int) -> None:
        conn = Connection(server.base_url)
        try:
            conn._connect().connect()
            barrier.wait()
            start = time.perf_counter()
            reply = conn.request("GET", "/api", cookies)
            replies[i] = (
                reply.status,
                reply.header("X-Bench-Pid"),
                time.perf_counter() - start,
            )
        except Exception as e:  # a crashed request is a failed one
            replies[i] = (-1, repr(e), 0.0)
        finally:
            conn.close()

    dev.token_delay = plan.storm_token_delay
    before = dev.stats.snapshot()
    try:
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        during = dev.stats.snapshot()
        # Afterwards: does the stored token still work, without a new login?
        after_reply = browser.get_app("/api", ACCEPT_JSON)
        after = dev.stats.snapshot()
    finally:
        dev.token_delay = 0.0
    browser.app.close()

    def delta(a: dict[str, int], b: dict[str, int], key: str) -> int:
        return b.get(key, 0) - a.get(key, 0)

    statuses: dict[str, int] = {}
    for status, _, _ in replies:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {
        "requests": n,
        "refresh_calls": delta(before, during, "token_refresh_token"),
        "invalid_grant": delta(before, during, "invalid_grant"),
        "failed": sum(1 for status, _, _ in replies if status != 200),
        "statuses": statuses,
        "workers_reached": len({pid for _, pid, _ in replies if pid}),
        "max_latency_ms": max(elapsed for _, _, elapsed in replies) * 1000,
        "token_works_after": after_reply.status == 200,
        "refresh_calls_after": delta(during, after, "token_refresh_token"),
    }


def refresh_storm(
    app: str,
    server: Server,
    provider_url: str,
    dev: DevProvider,
    plan: Plan,
) -> dict[str, t.Any]:
    """``storm_concurrency`` concurrent ``GET /api`` with the token marked expired
    (in the app's storage and at the provider), after a fresh login each time."""
    browser = Browser(Connection(server.base_url), Connection(provider_url))
    # Warm every worker (imports, discovery, JWKS) with a valid token first.
    browser.login()
    cookies = {**browser.cookie_header(), **ACCEPT_JSON}

    def warm() -> None:
        conn = Connection(server.base_url)
        try:
            conn.request("GET", "/api", cookies)
        finally:
            conn.close()

    for _ in range(2):
        threads = [threading.Thread(target=warm) for _ in range(plan.storm_concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    repeats = []
    for _ in range(plan.storm_repeats):
        try:
            repeats.append(_storm_once(server, browser, dev, plan))
        except (LoginFailed, RuntimeError) as e:
            repeats.append({"error": str(e), "failed": plan.storm_concurrency})
    browser.provider.close()
    done = [r for r in repeats if "error" not in r]
    return {
        "repeats": repeats,
        "refresh_calls": statistics.median(r["refresh_calls"] for r in done)
        if done
        else None,
        "refresh_calls_max": max((r["refresh_calls"] for r in done), default=None),
        "failed": statistics.median(r["failed"] for r in repeats),
        "failed_total": sum(r["failed"] for r in repeats),
        "requests_total": plan.storm_concurrency * len(repeats),
        "invalid_grant_total": sum(r.get("invalid_grant", 0) for r in repeats),
        "token_works_after": sum(1 for r in done if r["token_works_after"]),
        "workers_reached": max((r["workers_reached"] for r in done), default=0),
        "repeats_run": len(repeats),
    }


# -- 3. login throughput -------------------------------------------------------


def login_throughput(
    servers: dict[str, Server],
    provider_url: str,
    dev: DevProvider,
    plan: Plan,
) -> dict[str, t.Any]:
    """Full logins per second, ``login_concurrency`` browsers at a time: login
    view → authorize and the provider's sign-in form → callback → token → user
    row. Each browser is a different user, so that concurrent logins don't all
    write the same token row."""
    apps = list(servers)
    results: dict[str, t.Any] = {app: {"repeats": []} for app in apps}
    auto_login = dev.auto_login
    dev.auto_login = None  # every browser signs in as its own user, by the form
    try:
        for app in apps:
            for i in range(plan.login_concurrency):
                browser = _login_browser(servers[app], provider_url, i)
                for _ in range(plan.login_warmup):
                    browser.login()
                browser.app.close()
                browser.provider.close()
        for repeat in range(plan.login_repeats):
            for app in _rotated(apps, repeat):
                results[app]["repeats"].append(
                    _logins(servers[app], provider_url, dev, plan)
                )
            log(
                f"  logins, repeat {repeat + 1}/{plan.login_repeats}: "
                + ", ".join(
                    f"{app} {results[app]['repeats'][-1]['per_second']:.0f}/s"
                    for app in apps
                )
            )
    finally:
        dev.auto_login = auto_login
    for app in apps:
        reps = results[app]["repeats"]
        results[app]["per_second"] = statistics.median(r["per_second"] for r in reps)
        results[app]["failed"] = sum(r["failed"] for r in reps)
        results[app]["worker_cpu_ms_per_login"] = statistics.median(
            r["worker_cpu_ms_per_login"] for r in reps
        )
    return results


def _login_browser(server: Server, provider_url: str, i: int) -> Browser:
    """Browser ``i`` always signs in as the provider user ``user<i>``: after the
    warm-up, a returning user with a user row and a token row of its own."""
    return Browser(
        Connection(server.base_url), Connection(provider_url), username=f"user{i}"
    )


def _logins(
    server: Server, provider_url: str, dev: DevProvider, plan: Plan
) -> dict[str, t.Any]:
    """``plan.login_concurrency`` browsers log in over and over for
    ``plan.login_seconds``, each in a process of its own: in threads of the runner
    they would share its interpreter lock with the provider, and the runner, not
    the app, would set the pace."""
    context = multiprocessing.get_context("spawn")
    n = plan.login_concurrency
    barrier = context.Barrier(n + 1)
    stop_at = context.Value("d", 0.0)
    results = context.Queue()
    processes = [
        context.Process(
            target=_browse,
            args=(server.base_url, provider_url, i, barrier, stop_at, results),
            daemon=True,
        )
        for i in range(n)
    ]
    for process in processes:
        process.start()
    before = dev.stats.snapshot()
    cpu_before = _worker_cpu(server)
    start = time.monotonic()
    stop_at.value = start + plan.login_seconds
    barrier.wait(timeout=60)
    outcomes = [results.get(timeout=plan.login_seconds + 120) for _ in processes]
    elapsed = time.monotonic() - start
    cpu_used = _worker_cpu(server) - cpu_before
    after = dev.stats.snapshot()
    for process in processes:
        process.join(timeout=10)
    done = sum(o["done"] for o in outcomes)
    return {
        "worker_cpu_ms_per_login": cpu_used * 1000 / max(1, done),
        "logins": done,
        "failed": sum(o["failed"] for o in outcomes),
        "seconds": elapsed,
        "per_second": done / elapsed,
        "code_exchanges": after.get("token_authorization_code", 0)
        - before.get("token_authorization_code", 0),
        "errors": [e for o in outcomes for e in o["errors"]][:3],
    }


def _browse(
    base_url: str,
    provider_url: str,
    i: int,
    barrier: t.Any,
    stop_at: t.Any,
    results: t.Any,
) -> None:
    """One browser of :func:`_logins`, in a process of its own."""
    browser = Browser(Connection(base_url), Connection(provider_url), f"user{i}")
    done = failed = 0
    errors: list[str] = []
    barrier.wait(timeout=60)
    deadline = stop_at.value
    while time.monotonic() < deadline:
        try:
            browser.login()
            done += 1
        except Exception as e:
            failed += 1
            if len(errors) < 3:
                errors.append(repr(e)[:300])
            browser.app.close()
            browser.provider.close()
    browser.app.close()
    browser.provider.close()
    results.put({"done": done, "failed": failed, "errors": errors})


# -- 4. import time ------------------------------------------------------------

#: What each library's app imports from it, timed after Flask, Flask-SQLAlchemy,
#: Flask-Login and requests are loaded (the floor imports none).
LIBRARY_MODULES = {
    "ours": ["flask_oauthclient", "flask_oauthclient.sqla"],
    "flask_dance": ["flask_dance.consumer", "flask_dance.consumer.storage.sqla"],
    "authlib": ["authlib.integrations.flask_client"],
}
#: What a login adds to that: the login flow and the ID-token check with PyJWT and
#: cryptography (Flask-Dance has none; Authlib's is loaded with its client already).
LOGIN_MODULES = {
    "ours": [
        "flask_oauthclient.login",
        "flask_oauthclient.oidc",
        "jwt",
        "jwt.algorithms",
        "cryptography.hazmat.primitives.asymmetric.rsa",
    ],
    "flask_dance": [],
    "authlib": [],
}
_BASE_MODULES = ["flask", "flask_sqlalchemy", "flask_login", "requests"]

_TIMER = """
import sys, time
for name in {base!r}:
    __import__(name)
start = time.perf_counter()
for name in {modules!r}:
    __import__(name)
print(time.perf_counter() - start)
"""

_MEMORY = """
import gc, sys, tracemalloc
def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
for name in {base!r}:
    __import__(name)
gc.collect()
before, count = rss(), len(sys.modules)
tracemalloc.start()
for name in {modules!r}:
    __import__(name)
gc.collect()
print(rss() - before, tracemalloc.get_traced_memory()[0], len(sys.modules) - count)
"""


def _run(code: str, env: dict[str, str]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1].split()


def _time_import(base: list[str], modules: list[str], env: dict[str, str]) -> float:
    return float(_run(_TIMER.format(base=base, modules=modules), env)[0]) * 1000


def _import_memory(
    base: list[str], modules: list[str], env: dict[str, str]
) -> dict[str, float]:
    rss, traced, count = _run(_MEMORY.format(base=base, modules=modules), env)
    return {
        "rss_mb": int(rss) / 2**20,
        "traced_mb": int(traced) / 2**20,
        "modules": int(count),
    }


#: The library import between two calls of ``math.lgamma``, where callgrind dumps
#: its counters: the second dump counts the import alone.
_MARKED = """
import math
for name in {base!r}:
    __import__(name)
math.lgamma(3.0)
for name in {modules!r}:
    __import__(name)
math.lgamma(3.0)
"""


def _instructions(
    base: list[str], modules: list[str], env: dict[str, str]
) -> int | None:
    """The CPU instructions the import of ``modules`` runs (valgrind's callgrind,
    hash seed fixed): the same on every run, where the time in milliseconds
    varies by a third from run to run on a shared machine. ``None`` without
    valgrind."""
    if shutil.which("valgrind") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--dump-before=math_lgamma*",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-c",
                _MARKED.format(base=base, modules=modules),
            ],
            env={**env, "PYTHONHASHSEED": "0"},
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        for line in Path(f"{out}.2").read_text().splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError("callgrind wrote no summary of the import")


def _slowest_modules(
    modules: list[str], env: dict[str, str], top: int = 15
) -> list[tuple[str, int]]:
    """``-X importtime``: the modules whose own import took longest (microseconds,
    one run), for the JSON."""
    code = "".join(f"import {m}\n" for m in _BASE_MODULES)
    code += "import sys; sys.stderr.write('@@\\n')\n"
    code += "".join(f"import {m}\n" for m in modules)
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stderr.split("@@\n", 1)[-1]
    rows = []
    for line in err.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            own, _, name = line[len("import time:") :].split("|")
            rows.append((name.strip(), int(own)))
    return sorted(rows, key=lambda r: -r[1])[:top]


def import_time(apps: list[str], plan: Plan, env: dict[str, str]) -> dict[str, t.Any]:
    """Cold import, each in a fresh interpreter (bytecode cached, as deployed): the
    whole app module, and the library alone on top of what every app imports; the
    memory that library import takes, and what a login's modules add to it."""
    results: dict[str, t.Any] = {
        app: {"app_ms_runs": [], "library_ms_runs": []} for app in apps
    }
    for app in apps:  # write the bytecode caches first
        _time_import([], [APPS[app][0]], env)
    for repeat in range(plan.import_repeats):
        for app in _rotated(apps, repeat):
            results[app]["app_ms_runs"].append(_time_import([], [APPS[app][0]], env))
            if app in LIBRARY_MODULES:
                results[app]["library_ms_runs"].append(
                    _time_import(_BASE_MODULES, LIBRARY_MODULES[app], env)
                )
    for app in apps:
        r = results[app]
        r["app_ms"] = statistics.median(r["app_ms_runs"])
        r["library_ms"] = (
            statistics.median(r["library_ms_runs"]) if r["library_ms_runs"] else None
        )
        r["library_modules"] = LIBRARY_MODULES.get(app, [])
        if app in LIBRARY_MODULES:
            runs = [
                _import_memory(_BASE_MODULES, LIBRARY_MODULES[app], env)
                for _ in range(3)
            ]
            r["library_memory"] = sorted(runs, key=lambda m: m["rss_mb"])[1]
            login = LIBRARY_MODULES[app] + LOGIN_MODULES[app]
            runs = [_import_memory(_BASE_MODULES, login, env) for _ in range(3)]
            r["with_login_memory"] = sorted(runs, key=lambda m: m["rss_mb"])[1]
            r["slowest_modules"] = _slowest_modules(LIBRARY_MODULES[app], env)
            r["library_instructions"] = _instructions(
                _BASE_MODULES, LIBRARY_MODULES[app], env
            )
    return results


def sqlite_url(directory: Path, name: str) -> str:
    return f"sqlite:///{directory / name}.sqlite"
