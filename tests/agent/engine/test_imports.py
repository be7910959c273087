"""The engine's modules import each other one way (no cycle, e.g. the old
store.py <-> s3store.py), never import Django or the daemon, and import
inside functions only for the reasons listed here."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[3] / "agent" / "engine"

#: function-level imports that are there on purpose (not to hide a cycle)
LAZY_ALLOWED = {
    ("agent.engine.store", "agent.engine.store.s3"),  # the S3 SDK only when an s3:// URL is opened
    ("agent.engine.source", "agent.platform.windows_files"),  # Windows only
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ENGINE.parents[1]).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in ENGINE.rglob("*.py")}


def imported(node: ast.AST, known: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        subs = [f"{node.module}.{a.name}" for a in node.names]
        return [s for s in subs if s in known] or [node.module]
    return []


def top_level_imports(tree: ast.Module, known) -> list[str]:
    out = []
    for node in tree.body:
        out += imported(node, known)
        if isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            for inner in node.body + node.orelse:
                out += imported(inner, known)
        if isinstance(node, ast.Try):
            for inner in node.body:
                out += imported(inner, known)
    return out


def function_imports(tree: ast.Module, known) -> list[str]:
    out = []
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(fn):
                out += imported(node, known)
    return out


def test_no_import_cycle_no_django_and_no_hidden_lazy_imports():
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text())
        deps = top_level_imports(tree, known)
        assert not any(d.split(".")[0] in ("django", "console") for d in deps), name
        assert not any(d.startswith("agent.daemon") for d in deps), name
        # the package's own __init__ runs before any of its modules: not an edge
        graph[name] = {d for d in deps if d in known and d != "agent.engine" and d != name}
        lazy = {(name, d) for d in function_imports(tree, known) if d.startswith("agent.")}
        assert lazy <= LAZY_ALLOWED, f"{name} imports inside a function: {lazy - LAZY_ALLOWED}"

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert "agent.engine.store.s3" in graph and "agent.engine.tree" in graph
