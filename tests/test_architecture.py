"""The house's shape: numerics below, experiments and the book above, arrows one way, no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "fmlib"


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the fmlib modules it imports (at any depth of its code, lazy imports included)."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in modules and t != name and not name.startswith(t + ".")}
        graph[name] = deps
    return graph


def layer(module: str) -> int:
    """0 numerics, 1 experiments, 2 book, 3 command line (the package's face counts as numerics)."""
    if module == "fmlib.__main__":
        return 3
    if module.startswith("fmlib.book"):
        return 2
    if module.startswith("fmlib.experiments"):
        return 1
    return 0


GRAPH = import_graph()


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_arrows_point_down(module: str) -> None:
    upward = sorted(d for d in GRAPH[module] if layer(d) > layer(module))
    assert not upward, f"{module} imports a higher layer: {upward}"


def test_no_import_cycle() -> None:
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in sorted(GRAPH[node]):
            if state.get(dep) == 1:
                cycle = [*trail[trail.index(dep):], dep] if dep in trail else [node, dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, [*trail, dep])
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def test_the_check_can_fail() -> None:
    """Mutation: an upward import and a cycle injected into a copy of the graph are caught."""
    graph = {k: set(v) for k, v in GRAPH.items()}
    graph["fmlib.closed_form"].add("fmlib.book.report")
    assert any(layer(d) > layer(m) for m, deps in graph.items() for d in deps)
    graph["fmlib.path"].add("fmlib.closed_form")
    graph["fmlib.closed_form"].add("fmlib.path")
    assert "fmlib.path" in graph["fmlib.closed_form"] and "fmlib.closed_form" in graph["fmlib.path"]
