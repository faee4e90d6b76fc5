"""The import graph of mtbc, counting imports inside functions, has no circle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mtbc"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """``module -> {mtbc modules it imports}``, from every ``import`` / ``from`` statement in
    the module (top level, functions, methods, ``if TYPE_CHECKING`` blocks alike). ``from
    pkg import name`` counts ``pkg.name`` when that is a module, else ``pkg``."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                    pkg = pkg[: len(pkg) - (node.level - 1)]
                    base = ".".join(pkg + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            for target in targets:
                while target and target not in modules:  # `import a.b.c` -> closest module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as ``[a, b, ..., a]``, or None. A package's ``__init__`` importing
    its own submodules is not a circle by itself, but a submodule importing its package's
    ``__init__`` while that imports it back is."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
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


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    # mtbc.load_collection imports the loader inside the function
    assert "mtbc.data.collection" in graph["mtbc"]
    assert "mtbc.evaluation.engine" in graph["mtbc.evaluation.systems"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


#: Modules whose circles are left to the compute / claims / data-loader move (issue 17's other
#: half): circles among these modules alone are tolerated below, and only there.
OTHER_AREA = ("mtbc.analysis", "mtbc.bench", "mtbc.reports.compute_tables",
              "mtbc.data.collection", "mtbc.data.duplicates", "mtbc.data.mtat",
              "mtbc.data.openmic")


def _other(module: str) -> bool:
    return module.startswith(OTHER_AREA)


def test_no_import_circle_through_the_rest_of_mtbc():
    graph = import_graph()
    # drop only the edges between two modules of the other area: any circle that passes
    # through another module (the engine, stats, study, reports...) still shows
    kept = {m: {t for t in e if not (_other(m) and _other(t))} for m, e in graph.items()}
    cycle = find_cycle(kept)
    assert cycle is None, " -> ".join(cycle)


def test_no_import_circle_in_mtbc(request):
    cycle = find_cycle(import_graph())
    if cycle is not None and all(_other(m) for m in cycle):
        request.applymarker(pytest.mark.xfail(
            reason=f"circle in the compute/claims/data-loader area, moved separately: "
                   f"{' -> '.join(cycle)}", strict=False))
    assert cycle is None, " -> ".join(cycle)
