"""Turning a run's data into the summary, the goals, a text table, the docs page and
the chart."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import sqlite3
import subprocess
import typing as t
from dataclasses import dataclass
from pathlib import Path

from benchmarks.scenarios import BARE
from benchmarks.servers import APPS
from benchmarks.servers import PEERS
from benchmarks.servers import ROOT

COLUMNS = list(APPS)
LABELS = {key: label for key, (_, label) in APPS.items()}
SHORT = {
    "floor": "Floor",
    "ours": "Flask-OAuthClient",
    "flask_dance": "Flask-Dance",
    "authlib": "Authlib",
}
COLORS = {
    "floor": "#9e9e9e",
    "ours": "#1f77b4",
    "flask_dance": "#ff7f0e",
    "authlib": "#2ca02c",
}
PACKAGES = [
    "Flask-OAuthClient",
    "Flask",
    "Werkzeug",
    "requests",
    "requests-oauthlib",
    "oauthlib",
    "SQLAlchemy",
    "Flask-SQLAlchemy",
    "Flask-Login",
    "PyJWT",
    "cryptography",
    "Flask-Dance",
    "Authlib",
    "gunicorn",
    "psycopg",
    "matplotlib",
]


def environment(postgres_version: str | None) -> dict[str, t.Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, False
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu_model,
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_version,
        "packages": versions,
        "commit": f"{commit}{'+dirty' if dirty else ''}" if commit else None,
        # Other work on the machine shows in every number: recorded at the start.
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


# -- rows and goals ------------------------------------------------------------


@dataclass
class Row:
    metric: str
    values: dict[str, t.Any]  # app → number, text or None
    better: str | None = None  # "lower" / "higher" / None (not compared)
    goal: str = ""
    met: bool | None = None
    fmt: str = "{:.2f}"
    vs_floor: float | None = None
    vs_best_peer: float | None = None

    def cell(self, app: str) -> str:
        value = self.values.get(app)
        if value is None:
            return "n/a"
        if isinstance(value, str):
            return value
        return self.fmt.format(value)


def _best_peer(values: dict[str, t.Any], better: str) -> float | None:
    peers = [values[p] for p in PEERS if isinstance(values.get(p), (int, float))]
    if not peers:
        return None
    return min(peers) if better == "lower" else max(peers)


def _ratio(a: t.Any, b: t.Any) -> float | None:
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or not b:
        return None
    return a / b


def _lower_vs_peers(label: str, values: dict[str, t.Any]) -> Row:
    """A row where lower is better, compared with the better peer."""
    row = Row(label, values, "lower", fmt="{:.1f}")
    row.vs_best_peer = _ratio(values.get("ours"), _best_peer(values, "lower"))
    return row


def _vs_dance(values: dict[str, t.Any]) -> float | None:
    return _ratio(values.get("ours"), values.get("flask_dance"))


def rows(data: dict[str, t.Any]) -> list[Row]:
    """The table, with the goals of issue 14."""
    out: list[Row] = []
    protected = data["protected"]
    apps = [a for a in COLUMNS if a in protected]

    latency = {a: protected[a]["median_ms"] for a in apps}
    row = Row("Protected call, median latency (ms)", latency, "lower")
    row.vs_floor = _ratio(latency.get("ours"), latency.get("floor"))
    row.vs_best_peer = _ratio(latency.get("ours"), _best_peer(latency, "lower"))
    row.goal = "<= 1.10x floor, below both peers"
    row.met = (
        row.vs_floor is not None
        and row.vs_floor <= 1.10
        and all(latency["ours"] < latency[p] for p in PEERS if p in latency)
    )
    out.append(row)

    if BARE in protected:
        bare = {"floor": protected[BARE]["median_ms"]}
        row = Row("Protected call, bare requests.Session (ms)", bare, "lower")
        row.vs_floor = _ratio(latency.get("ours"), bare["floor"])
        out.append(row)

    if "floor" in latency:
        floor = latency["floor"]
        over = {a: latency[a] - floor for a in apps if a != "floor"}
        row = Row("Protected call, overhead over the floor (ms)", over, "lower")
        row.vs_best_peer = _ratio(over.get("ours"), _best_peer(over, "lower"))
        out.append(row)

    p90 = {a: protected[a]["p90_ms"] for a in apps}
    row = Row("Protected call, p90 latency (ms)", p90, "lower")
    row.vs_floor = _ratio(p90.get("ours"), p90.get("floor"))
    row.vs_best_peer = _ratio(p90.get("ours"), _best_peer(p90, "lower"))
    out.append(row)

    cpu = {a: protected[a]["worker_cpu_ms_per_call"] for a in apps}
    row = Row("Protected call, app CPU per call (ms)", cpu, "lower")
    row.vs_floor = _ratio(cpu.get("ours"), cpu.get("floor"))
    row.vs_best_peer = _ratio(cpu.get("ours"), _best_peer(cpu, "lower"))
    out.append(row)

    conns = {a: protected[a]["new_connections_per_1000"] for a in apps}
    row = Row("New provider connections per 1000 calls", conns, "lower", fmt="{:.1f}")
    row.goal = "0"
    row.met = conns.get("ours", 1e9) == 0
    out.append(row)

    for key, title in (
        ("storm_threads", "Storm, threads"),
        ("storm_processes", "Storm, processes"),
    ):
        storm = data.get(key)
        if not storm or "skipped" in storm:
            reason = (storm or {}).get("skipped", "not run")
            out.append(Row(f"{title}: skipped ({reason})", {}))
            continue
        peers_and_ours = [a for a in COLUMNS if a in storm]
        refresh = {a: _refresh_cell(storm[a]) for a in peers_and_ours}
        row = Row(f"{title}: refresh calls (median / max)", refresh)
        ours = storm.get("ours", {})
        row.goal = "exactly 1"
        row.met = ours.get("refresh_calls") == 1 and ours.get("refresh_calls_max") == 1
        out.append(row)
        failed = {
            a: f"{storm[a]['failed_total']} / {storm[a]['requests_total']}"
            for a in peers_and_ours
        }
        row = Row(f"{title}: failed requests (all repeats)", failed)
        row.goal = "0"
        row.met = ours.get("failed_total") == 0
        out.append(row)
        works = {
            a: f"{storm[a]['token_works_after']} / {storm[a]['repeats_run']}"
            for a in peers_and_ours
        }
        row = Row(f"{title}: stored token works afterwards", works)
        row.goal = "every time"
        row.met = ours.get("token_works_after") == ours.get("repeats_run")
        out.append(row)

    logins = data["logins"]
    per_second = {a: logins[a]["per_second"] for a in COLUMNS if a in logins}
    row = Row("Logins per second", per_second, "higher", fmt="{:.1f}")
    row.vs_floor = _ratio(per_second.get("ours"), per_second.get("floor"))
    row.vs_best_peer = _ratio(per_second.get("ours"), _best_peer(per_second, "higher"))
    row.goal = ">= 0.95x floor, above both peers"
    row.met = (
        row.vs_floor is not None
        and row.vs_floor >= 0.95
        and row.vs_best_peer is not None
        and row.vs_best_peer > 1.0
    )
    out.append(row)

    cpu = {a: logins[a]["worker_cpu_ms_per_login"] for a in COLUMNS if a in logins}
    row = Row("Login, app CPU per login (ms)", cpu, "lower", fmt="{:.1f}")
    row.vs_floor = _ratio(cpu.get("ours"), cpu.get("floor"))
    row.vs_best_peer = _ratio(cpu.get("ours"), _best_peer(cpu, "lower"))
    out.append(row)
    # The runner (provider and browsers) shares the cores: logins per second of
    # the app worker's own CPU tells the apps apart where the pace above doesn't.
    capacity = {a: 1000 / v for a, v in cpu.items() if v}
    row = Row("Logins per app CPU second", capacity, "higher", fmt="{:.0f}")
    row.vs_floor = _ratio(capacity.get("ours"), capacity.get("floor"))
    row.vs_best_peer = _ratio(capacity.get("ours"), _best_peer(capacity, "higher"))
    out.append(row)

    imports = data["imports"]
    lib = {a: imports[a]["library_ms"] for a in COLUMNS if a in imports}
    row = Row("Library import, cold (ms)", lib, "lower", fmt="{:.1f}")
    row.vs_best_peer = _ratio(lib.get("ours"), _best_peer(lib, "lower"))
    row.goal = "<= Flask-Dance"
    dance = _vs_dance(lib)
    row.met = dance is not None and dance <= 1.0
    out.append(row)

    instructions = {
        a: imports[a]["library_instructions"] / 1e6
        for a in COLUMNS
        if imports.get(a, {}).get("library_instructions")
    }
    if instructions:
        out.append(
            _lower_vs_peers("Library import, CPU instructions (millions)", instructions)
        )

    lib_mem = {
        a: imports[a]["library_memory"]["rss_mb"]
        for a in COLUMNS
        if "library_memory" in imports.get(a, {})
    }
    if lib_mem:
        out.append(_lower_vs_peers("Library import, memory (MiB)", lib_mem))
        with_login = {
            a: imports[a]["with_login_memory"]["rss_mb"]
            for a in COLUMNS
            if "with_login_memory" in imports.get(a, {})
        }
        out.append(
            _lower_vs_peers("Library and its login modules, memory (MiB)", with_login)
        )

    app_import = {a: imports[a]["app_ms"] for a in COLUMNS if a in imports}
    row = Row("App module import, cold (ms)", app_import, "lower", fmt="{:.1f}")
    row.vs_floor = _ratio(app_import.get("ours"), app_import.get("floor"))
    row.vs_best_peer = _ratio(app_import.get("ours"), _best_peer(app_import, "lower"))
    out.append(row)

    memory = data["memory"]
    calls = memory.get("ours", {}).get("calls", 0)
    rss = {a: memory[a]["rss_mb"] for a in COLUMNS if a in memory}
    row = Row(
        f"Worker memory after {calls:,} protected calls, no login (MiB)",
        rss,
        "lower",
        fmt="{:.1f}",
    )
    row.vs_floor = _ratio(rss.get("ours"), rss.get("floor"))
    row.vs_best_peer = _ratio(rss.get("ours"), _best_peer(rss, "lower"))
    row.goal = "<= 1.05x Flask-Dance"
    dance = _vs_dance(rss)
    row.met = dance is not None and dance <= 1.05
    out.append(row)

    modules = {
        a: f"{m['count']} / {len(m['login_only'])}"
        for a in COLUMNS
        if (m := memory.get(a, {}).get("modules"))
    }
    if modules:
        row = Row("That worker's modules / login-only ones loaded", modules)
        row.goal = "no login-only module"
        row.met = not memory.get("ours", {}).get("modules", {}).get("login_only")
        out.append(row)

    after_logins = data.get("memory_after_logins")
    if after_logins:
        rss = {a: after_logins[a]["rss_mb"] for a in COLUMNS if a in after_logins}
        row = Row("Worker memory after the logins (MiB)", rss, "lower", fmt="{:.1f}")
        row.vs_floor = _ratio(rss.get("ours"), rss.get("floor"))
        row.vs_best_peer = _ratio(rss.get("ours"), _best_peer(rss, "lower"))
        out.append(row)
    return out


def _refresh_cell(storm: dict[str, t.Any]) -> str:
    if storm.get("refresh_calls") is None:
        return "n/a"
    return f"{storm['refresh_calls']:g} / {storm['refresh_calls_max']}"


def _fmt_ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def _met(value: bool | None) -> str:
    if value is None:
        return ""
    return "yes" if value else "NO"


HEADER = [
    "Metric",
    *(SHORT[a] for a in COLUMNS),
    "Ours/floor",
    "Ours/best peer",
    "Goal",
    "Met",
]


def table_cells(table: list[Row]) -> list[list[str]]:
    return [
        [
            row.metric,
            *(row.cell(a) for a in COLUMNS),
            _fmt_ratio(row.vs_floor),
            _fmt_ratio(row.vs_best_peer),
            row.goal,
            _met(row.met),
        ]
        for row in table
    ]


def text_table(table: list[Row]) -> str:
    cells = [HEADER, *table_cells(table)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(HEADER))]
    lines = []
    for n, r in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 or i >= len(HEADER) - 2 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths))
            ).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def rst_table(table: list[Row]) -> str:
    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "   :stub-columns: 1",
        "",
    ]
    for r in [HEADER, *table_cells(table)]:
        lines.append(f"   * - {r[0] or ' '}")
        for c in r[1:]:
            lines.append(f"     - {c}" if c else "     -")
    return "\n".join(lines)


# -- the chart -----------------------------------------------------------------


def chart(data: dict[str, t.Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(17, 7.5))
    axes = axes.ravel()

    def bars(ax: t.Any, title: str, values: dict[str, float | None], fmt: str) -> None:
        apps = [a for a in COLUMNS if values.get(a) is not None]
        heights = [float(values[a] or 0) for a in apps]
        drawn = ax.bar(
            [SHORT[a] for a in apps], heights, color=[COLORS[a] for a in apps]
        )
        for rect, h in zip(drawn, heights):
            ax.annotate(
                fmt.format(h),
                (rect.get_x() + rect.get_width() / 2, h),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        ax.margins(y=0.18)

    def goal_line(ax: t.Any, value: float, label: str, loc: str) -> None:
        ax.axhline(value, color="black", linestyle="--", linewidth=0.8, label=label)
        ax.legend(fontsize=8, loc=loc)

    protected = data["protected"]
    bars(
        axes[0],
        "Protected call, median latency (ms)",
        {a: protected[a]["median_ms"] for a in protected},
        "{:.2f}",
    )
    if "floor" in protected:
        goal_line(
            axes[0], protected["floor"]["median_ms"] * 1.10, "1.10x floor", "upper left"
        )
    bars(
        axes[1],
        "New provider connections / 1000 calls",
        {a: protected[a]["new_connections_per_1000"] for a in protected},
        "{:.0f}",
    )
    for ax, field, title in (
        (axes[2], "refresh_calls", "Refresh storm: refresh calls (median)"),
        (axes[3], "failed", "Refresh storm: failed of 16 (median)"),
    ):
        _storm_bars(ax, data, field, title)
    logins = data["logins"]
    bars(
        axes[4],
        "Logins per second",
        {a: logins[a]["per_second"] for a in logins},
        "{:.1f}",
    )
    if "floor" in logins:
        goal_line(
            axes[4], logins["floor"]["per_second"] * 0.95, "0.95x floor", "lower right"
        )
    bars(
        axes[5],
        "Library import, cold (ms)",
        {a: data["imports"][a]["library_ms"] for a in data["imports"]},
        "{:.0f}",
    )
    if data["imports"].get("flask_dance", {}).get("library_ms"):
        goal_line(
            axes[5],
            data["imports"]["flask_dance"]["library_ms"],
            "Flask-Dance",
            "upper left",
        )
    memory = data["memory"]
    calls = memory.get("ours", {}).get("calls", 0)
    bars(
        axes[6],
        f"Worker RSS after {calls:,} protected calls, no login (MiB)",
        {a: memory[a]["rss_mb"] for a in memory},
        "{:.1f}",
    )
    if "flask_dance" in memory:
        goal_line(
            axes[6],
            memory["flask_dance"]["rss_mb"] * 1.05,
            "1.05x Flask-Dance",
            "lower right",
        )
    after_logins = data.get("memory_after_logins") or {}
    bars(
        axes[7],
        "Worker RSS after the logins (MiB)",
        {a: after_logins[a]["rss_mb"] for a in after_logins},
        "{:.1f}",
    )
    env = data["environment"]
    fig.suptitle(
        f"Flask-OAuthClient vs floor and peers — {env['date']}, Python {env['python']},"
        f" {env['cores']} cores",
        fontsize=11,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _storm_bars(ax: t.Any, data: dict[str, t.Any], field: str, title: str) -> None:
    modes = [
        (key, label)
        for key, label in (
            ("storm_threads", "16 threads"),
            ("storm_processes", "4 processes"),
        )
        if data.get(key) and "skipped" not in data[key]
    ]
    apps = [a for a in COLUMNS if a != "floor"]
    width = 0.8 / max(1, len(modes))
    for m, (key, label) in enumerate(modes):
        xs = [i + (m - (len(modes) - 1) / 2) * width for i in range(len(apps))]
        heights = [float(data[key].get(a, {}).get(field) or 0) for a in apps]
        drawn = ax.bar(
            xs,
            heights,
            width,
            color=[COLORS[a] for a in apps],
            alpha=1.0 if m == 0 else 0.55,
            hatch=None if m == 0 else "//",
            label=label,
        )
        for rect, h in zip(drawn, heights):
            ax.annotate(
                f"{h:g}",
                (rect.get_x() + rect.get_width() / 2, h),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    ax.set_xticks(range(len(apps)), [SHORT[a] for a in apps])
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    ax.set_title(title, fontsize=10)
    ax.margins(y=0.18)
    if modes:
        ax.legend(fontsize=8)


# -- files ---------------------------------------------------------------------


def write_results(data: dict[str, t.Any], directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    table = rows(data)
    data = {**data, "table": [row.__dict__ for row in table]}
    paths = {
        "json": directory / f"results-{stamp}.json",
        "latest": directory / "latest.json",
        "table": directory / "latest.txt",
        "chart": directory / "performance.png",
    }
    text = json.dumps(data, indent=2, sort_keys=False, default=str)
    paths["json"].write_text(text)
    paths["latest"].write_text(text)
    paths["table"].write_text(text_table(table) + "\n")
    chart(data, paths["chart"])
    return paths
