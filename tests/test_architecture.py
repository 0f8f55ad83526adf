"""The package's shape: modules import one way (no circle, type-only and
function-level imports included), and no module outside ``testing/`` and
``providers/`` grows past about 600 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "flask_oauthclient"
#: "About 600 lines": a module past this is split.
MAX_LINES = 650


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Each module's imports of other modules of the package, wherever they stand
    (module level, ``if TYPE_CHECKING:``, inside functions)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, path.name == "__init__.py", node)
                targets = [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                # "from . import x" names a module; "from .x import y" its attribute.
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and target.startswith("flask_oauthclient"):
                    found.add(target)
        graph[name] = found
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _through_packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph with the sub-packages' ``__init__`` modules, which only re-export
    their own modules, replaced by what they import: importing ``a.b`` runs
    ``a/__init__``, which may import ``a.c``, yet ``a.c`` importing ``x`` and ``x``
    importing ``a.b`` is no circle."""
    packages = {
        _module_name(p) for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE
    }

    def expand(targets: set[str], seen: frozenset[str]) -> set[str]:
        out: set[str] = set()
        for target in targets:
            if target in packages and target not in seen:
                out |= expand(graph[target], seen | {target})
            elif target not in packages:
                out.add(target)
        return out

    return {
        name: expand(targets, frozenset({name}))
        for name, targets in graph.items()
        if name not in packages
    }


def test_modules_import_one_way() -> None:
    graph = _through_packages(_imports(_modules()))
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_check_finds_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize(
    "name",
    sorted(
        name
        for name in _modules()
        if not name.startswith(
            ("flask_oauthclient.testing", "flask_oauthclient.providers")
        )
    ),
)
def test_module_size(name: str) -> None:
    lines = len(_modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it by idea"


def test_sqlalchemy_is_imported_only_where_it_is_used() -> None:
    """An app on SessionStorage never loads SQLAlchemy: only ``sqla`` imports it
    at module level."""
    for name, path in _modules().items():
        if name.startswith("flask_oauthclient.sqla"):
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.split(".")[0] == "sqlalchemy" for n in names), name
