"""End-to-end fixtures: a real OpenID provider, the example app, headless Chromium.

- The provider is panva's certified ``oidc-provider`` (``provider.mjs`` here, pinned
  by ``package-lock.json``; ``npm ci`` in this folder installs it), on a free
  loopback port, with access tokens that expire after ``ACCESS_TOKEN_TTL`` seconds.
- The example app (``example_app``) runs on another free port with a SQLite file
  database, registered at that provider as ``dev``.
- Chromium is Debian's (``/usr/bin/chromium``, or ``$CHROMIUM``), driven by
  Playwright through pytest-playwright (the ``e2e`` extra). Never ``playwright
  install``: it downloads a browser build.

Both servers are started once per module and stopped by their pid at teardown; their
logs, the screenshots and a screenshot of each failing test go to
``test-artifacts/e2e/`` at the repository root (gitignored).

Anything missing (node 20+, the npm packages, Chromium, Playwright) skips the tests
with the reason and the command that installs it, or fails them when
``FLASK_OAUTHCLIENT_REQUIRE_SERVICES=1`` (``.ci/run``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import typing as t
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from conftest import skip_or_fail

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
#: Screenshots and server logs (``test-artifacts/`` is gitignored).
ARTIFACTS = REPO / "test-artifacts" / "e2e"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
#: The flags that work for headless Debian Chromium as root on a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Node 18 crashes in oidc-provider 9 (``URL.parse is not a function``).
MIN_NODE = 20
CLIENT_ID = "e2e-client"
CLIENT_SECRET = "e2e-secret"
#: Seconds an access token lives at the provider.
ACCESS_TOKEN_TTL = 4
#: Seconds before expiry the app refreshes (shorter than the lifetime, so a page view
#: right after login uses the token as is and only expiry triggers a refresh).
REFRESH_LEEWAY = 1
#: Where the provider serves userinfo (see the provider's environment in ``stack``).
USERINFO_PATH = "/userinfo"
#: Playwright's wait for a selector or a navigation, in ms (its default is 30 s).
TIMEOUT_MS = 15_000


def missing_requirement(config: pytest.Config) -> str | None:
    """Why the browser tests can't run here, with the command that fixes it, or
    ``None`` when everything is there."""
    if importlib.util.find_spec("playwright") is None:
        return (
            "the e2e tests need Playwright: pip install -e '.[e2e]' "
            "(never `playwright install`: Debian's Chromium is used)"
        )
    if not config.pluginmanager.hasplugin("playwright"):
        return (
            "the e2e tests need the pytest-playwright plugin: pip install -e '.[e2e]'"
            " (and no `-p no:playwright`)"
        )
    node = shutil.which("node")
    if node is None:
        return f"the e2e tests need Node.js {MIN_NODE} or newer (node is not on PATH)"
    try:
        version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        major = int(version.lstrip("v").split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError):
        return f"the e2e tests need Node.js {MIN_NODE}+; `{node} --version` failed"
    if major < MIN_NODE:
        return f"the e2e tests need Node.js {MIN_NODE} or newer, {node} is {version}"
    if not (HERE / "node_modules" / "oidc-provider" / "package.json").is_file():
        return "the e2e tests need the OpenID provider: run `npm ci` in tests/e2e"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return (
            f"the e2e tests need Chromium at {CHROMIUM} (apt-get install -y "
            "--no-install-recommends chromium, or set CHROMIUM to its path)"
        )
    return None


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A process started for the tests, its log file and its port."""

    def __init__(self, name: str, args: list[str], port: int, **popen: t.Any) -> None:
        self.name = name
        self.port = port
        self.log = ARTIFACTS / f"{name}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                **popen,
            )

    def wait(self, url: str, timeout: float = 20.0) -> None:
        """Wait until ``url`` answers 200; fail with the log if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"{self.name} exited with {self.proc.returncode} at startup:\n"
                    f"{self.tail()}"
                )
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        pytest.fail(f"{self.name} did not answer {url} in {timeout} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        """Stop it by its pid: SIGTERM, then SIGKILL after 5 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_provider(
    name: str, port: int, issuer: str | None = None, **env: str
) -> Server:
    """Start ``provider.mjs`` (oidc-provider) on ``port`` as ``issuer`` (default
    ``http://127.0.0.1:<port>``) with the ``OP_*`` settings in ``env``, and wait for
    its discovery document."""
    issuer = issuer or f"http://127.0.0.1:{port}"
    provider = Server(
        name,
        [shutil.which("node") or "node", "provider.mjs"],
        port,
        cwd=HERE,
        env={**os.environ, "OP_PORT": str(port), "OP_ISSUER": issuer, **env},
    )
    try:
        provider.wait(f"{issuer}/.well-known/openid-configuration")
    except BaseException:
        provider.stop()
        raise
    return provider


@dataclass
class Stack:
    """The running provider and app, and what the tests ask them."""

    issuer: str
    app_url: str
    db_path: Path
    metadata: dict[str, t.Any]
    provider_log: Path
    app_log: Path

    # -- the provider, as the client would talk to it --------------------------------

    def introspect(self, token: str, hint: str = "refresh_token") -> dict[str, t.Any]:
        """RFC 7662 introspection of ``token`` with the client's credentials."""
        r = requests.post(
            self.metadata["introspection_endpoint"],
            data={"token": token, "token_type_hint": hint},
            auth=(CLIENT_ID, CLIENT_SECRET),
            timeout=5,
        )
        assert r.status_code == 200, r.text
        return t.cast(dict[str, t.Any], r.json())

    def refresh(self, refresh_token: str) -> requests.Response:
        """A refresh-token grant at the token endpoint, with the client's
        credentials."""
        return requests.post(
            self.metadata["token_endpoint"],
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(CLIENT_ID, CLIENT_SECRET),
            timeout=5,
        )

    def userinfo(self, access_token: str) -> requests.Response:
        return requests.get(
            self.metadata["userinfo_endpoint"],
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=5,
        )

    # -- the example app's database ----------------------------------------------------

    def stored_token(self, subject: str) -> dict[str, t.Any] | None:
        """The ``dev`` token the app stored for the user ``subject``, read from its
        SQLite file (the table the token model maps, found by its columns)."""
        with closing(sqlite3.connect(self.db_path, timeout=10)) as db:
            table = _token_table(db)
            row = db.execute(
                f'SELECT token FROM "{table}" WHERE provider = ? AND subject = ?',
                ("dev", subject),
            ).fetchone()
        if row is None:
            return None
        token = row[0]
        return t.cast(
            dict[str, t.Any], json.loads(token) if isinstance(token, str) else token
        )


def _token_table(db: sqlite3.Connection) -> str:
    tables = [
        r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
    ]
    for name in tables:
        columns = {r[1] for r in db.execute(f'PRAGMA table_info("{name}")')}
        if {"provider", "subject", "token"} <= columns:
            return name
    raise AssertionError(f"no token table in the example app's database: {tables}")


@pytest.fixture(scope="session")
def e2e_ready(pytestconfig: pytest.Config) -> None:
    """Skip (or, under FLASK_OAUTHCLIENT_REQUIRE_SERVICES=1, fail) when something
    the browser tests need is missing."""
    reason = missing_requirement(pytestconfig)
    if reason:
        skip_or_fail(reason)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("FAILED-*.png"):  # from an earlier run
        old.unlink()


@pytest.fixture(scope="module")
def stack(
    e2e_ready: None, tmp_path_factory: pytest.TempPathFactory
) -> t.Iterator[Stack]:
    """The provider and the example app, each on a free loopback port."""
    op_port, app_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{op_port}"
    app_url = f"http://127.0.0.1:{app_port}"
    db_path = tmp_path_factory.mktemp("example-app") / "example.sqlite"
    servers: list[Server] = []
    try:
        provider = start_provider(
            "provider",
            op_port,
            OP_CLIENT_ID=CLIENT_ID,
            OP_CLIENT_SECRET=CLIENT_SECRET,
            OP_REDIRECT_URIS=f"{app_url}/login/dev/authorized",
            OP_ACCESS_TOKEN_TTL=str(ACCESS_TOKEN_TTL),
            # The example app's profile page calls "<issuer>/userinfo" (right for
            # the bundled development provider) instead of the discovered
            # userinfo_endpoint (oidc-provider's is /me): serve it there too.
            OP_USERINFO_PATH=USERINFO_PATH,
        )
        servers.append(provider)
        metadata = requests.get(
            f"{issuer}/.well-known/openid-configuration", timeout=5
        ).json()
        app = Server(
            "app",
            [sys.executable, str(HERE / "run_example_app.py"), str(app_port)],
            app_port,
            cwd=REPO,
            env={
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "DEV_PROVIDER_URL": issuer,
                "DEV_CLIENT_ID": CLIENT_ID,
                "DEV_CLIENT_SECRET": CLIENT_SECRET,
                "DATABASE_URL": f"sqlite:///{db_path}",
                "SECRET_KEY": "e2e secret key",
                "OAUTHCLIENT_INSECURE_TRANSPORT": "1",
                "E2E_REFRESH_LEEWAY": str(REFRESH_LEEWAY),
            },
        )
        servers.append(app)
        app.wait(f"{app_url}/")
        yield Stack(issuer, app_url, db_path, metadata, provider.log, app.log)
    finally:
        for server in reversed(servers):
            server.stop()


@pytest.fixture(scope="session")
def browser_type_launch_args(
    browser_type_launch_args: dict[str, t.Any],
) -> dict[str, t.Any]:
    """pytest-playwright launches Debian's Chromium with flags that work headless,
    as root, on a closed network."""
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": CHROMIUM_ARGS,
        "headless": True,
    }


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> t.Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def ui(request: pytest.FixtureRequest, stack: Stack) -> t.Iterator[t.Any]:
    """A fresh browser page (its own cookies) for one test; a screenshot of it goes
    to test-artifacts/e2e/ when the test fails."""
    page = request.getfixturevalue("page")  # pytest-playwright's, checked in e2e_ready
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    if request.node.stash.get(_CALL_FAILED, False):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        try:
            page.screenshot(path=str(ARTIFACTS / f"FAILED-{name}.png"), full_page=True)
        except Exception:  # the page may be gone: the report matters more
            pass
