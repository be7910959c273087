"""The console's layers point one way (docs/architecture.md, "Layers").

Every module of console/ is parsed with ``ast`` (nothing is imported, so the
test needs no database and sees imports hidden inside functions), its
imports of console.* resolved to modules, and three rules checked:

1. no import cycle among console's modules (module-level and function-level
   imports alike: a cycle hidden in a function is still a cycle);
2. a domain app (core, accounts, audit, fleet, policies, jobs, storage)
   never imports an adapter (gateway, api, dashboard, metrics) nor the demo app, and
   the foundation (core, accounts, audit) never imports the other domain
   apps;
3. no function-level import of console.*: such an import only hides a cycle
   or a wrong-way dependency. The one exception is ``AppConfig.ready()``,
   where Django requires it (an app's models and signal handlers cannot be
   imported before the app registry is ready).

Hand-written rather than grimp/import-linter: those report module-level and
function-level imports alike, and rule 3 is about telling them apart.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "console"
DOMAIN = (
    "core",
    "accounts",
    "audit",
    "fleet",
    "policies",
    "jobs",
    "storage",
    "alerts",
    "reports",
    "holds",
    "restore",
)
ADAPTERS = ("gateway", "api", "dashboard", "metrics", "demo")
FOUNDATION = ("core", "accounts", "audit")


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    line: int
    function: str  # "" at module level, else the enclosing function's name


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p
        for p in sorted(CONSOLE.rglob("*.py"))
        if "migrations" not in p.parts and "__pycache__" not in p.parts
    }


def _resolve(base: str, name: str, known: dict[str, Path]) -> str:
    """``from base import name``: the module ``base.name`` if there is one."""
    candidate = f"{base}.{name}"
    return candidate if candidate in known else base


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    package = package[: len(package) - node.level + 1]
    return ".".join(package + ([node.module] if node.module else []))


def _walk(module: str, path: Path, known: dict[str, Path]) -> list[Import]:
    found: list[Import] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = function
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                inner = child.name
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.startswith("console"):
                        found.append(Import(module, alias.name, child.lineno, function))
            elif isinstance(child, ast.ImportFrom):
                base = _absolute(module, path, child)
                if base == "console" or base.startswith("console."):
                    for alias in child.names:
                        target = _resolve(base, alias.name, known)
                        found.append(Import(module, target, child.lineno, function))
            visit(child, inner)

    visit(ast.parse(path.read_text(), str(path)), "")
    return found


def import_graph() -> list[Import]:
    known = _modules()
    return [imp for module, path in known.items() for imp in _walk(module, path, known)]


def _app(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in DOMAIN) else ""


def cycles(imports: list[Import]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's
    algorithm, iteratively), each as one cycle through it (a → b → … → a)
    followed by its other members."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.target != imp.importer:
            graph.setdefault(imp.importer, set()).add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    out = []
    for component in components:
        cycle = _one_cycle(graph, set(component))
        out.append(cycle + sorted(set(component) - set(cycle)))
    return out


def _one_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph.get(node, ()) & component):
                if child == start:
                    return paths[node] + [start]
                if child not in paths:
                    paths[child] = paths[node] + [child]
                    nxt.append(child)
        frontier = nxt
    return sorted(component)


def _where(imp: Import) -> str:
    inside = f" (in {imp.function}())" if imp.function else ""
    return f"{imp.importer}:{imp.line} imports {imp.target}{inside}"


def test_the_parser_sees_what_it_must():
    """The checks below cannot pass by seeing nothing: known imports are found."""
    imports = import_graph()
    assert len(_modules()) > 80
    edges = {(i.importer, i.target) for i in imports}
    assert ("console.jobs.services", "console.fleet.models") in edges
    assert ("console.gateway.stream", "console.jobs.commands") in edges
    assert any(i.function == "ready" for i in imports)


def test_detectors_catch_what_they_must():
    a, b, c = "console.fleet.a", "console.jobs.b", "console.gateway.c"
    found = cycles([Import(a, b, 1, ""), Import(b, c, 2, "f"), Import(c, a, 3, "")])
    assert found == [[a, b, c, a]]
    assert cycles([Import(a, b, 1, ""), Import(c, a, 3, "")]) == []
    assert _app("console.storage.grants") == "storage"
    assert _app("console.gateway.services.commands") == "gateway"
    assert _app("console.settings") == ""


def test_no_import_cycle_in_console():
    found = cycles(import_graph())
    shown = [" → ".join(c[: c.index(c[0], 1) + 1]) + _also(c) for c in found]
    assert not found, "import cycles:\n" + "\n".join(shown)


def _also(component: list[str]) -> str:
    rest = component[component.index(component[0], 1) + 1 :]
    return f"\n    (same knot: {', '.join(rest)})" if rest else ""


def test_domain_apps_never_import_an_adapter():
    wrong = sorted(
        {
            _where(imp)
            for imp in import_graph()
            if _app(imp.importer) in DOMAIN and _app(imp.target) in ADAPTERS
        }
    )
    assert not wrong, "domain → adapter imports:\n" + "\n".join(wrong)


def test_no_function_level_import_of_console():
    hidden = sorted(
        {
            _where(imp)
            for imp in import_graph()
            if imp.function and not (imp.function == "ready" and imp.importer.endswith(".apps"))
        }
    )
    assert not hidden, "function-level imports of console.*:\n" + "\n".join(hidden)


def test_the_foundation_never_imports_the_other_domain_apps():
    wrong = sorted(
        {
            _where(imp)
            for imp in import_graph()
            if _app(imp.importer) in FOUNDATION
            and _app(imp.target) in DOMAIN
            and _app(imp.target) not in FOUNDATION
        }
    )
    assert not wrong, "foundation → domain imports:\n" + "\n".join(wrong)
