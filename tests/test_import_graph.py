"""Imports point one way and form no circle (docs/architecture.md, "Layers").

Every module of our packages is parsed (not imported) and every import statement in it is an
edge, at any depth: a function-level import counts as much as one at the top. Two checks:

- layering, package to package: ``web → dispatch → telematics → fleet``, ``dispatch →
  optimizer``; the optimizer imports nothing of ours, nothing imports ``web``. Imports under
  ``if TYPE_CHECKING:`` count here too (a type names what a module depends on);
- no circle between modules (strongly connected components of the module graph), counting
  the imports that run. A type-only import under ``TYPE_CHECKING`` does not: the JT/T 808
  gateway's connection and gateway objects name each other's types (session ↔ server) by it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fleet", "telematics", "dispatch", "optimizer", "web")
# What each package may import (besides itself).
ALLOWED: dict[str, frozenset[str]] = {
    "fleet": frozenset(),
    "optimizer": frozenset(),
    "telematics": frozenset({"fleet"}),
    "dispatch": frozenset({"telematics", "fleet", "optimizer"}),
    "web": frozenset({"dispatch", "telematics", "fleet", "optimizer"}),
}
# No circle is excused (issue 10 item 3 broke the last one: trips → approvals → assignments).
KNOWN_CYCLES: tuple[frozenset[str], ...] = ()


def _module_files() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if any(part in ("frontend", "node_modules", "__pycache__") for part in rel.parts):
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _statements(tree: ast.AST) -> Iterator[tuple[ast.AST, bool]]:
    """Every node, with whether it lies under ``if TYPE_CHECKING:``."""
    todo: list[tuple[ast.AST, bool]] = [(tree, False)]
    while todo:
        node, typing_only = todo.pop()
        yield node, typing_only
        guarded: list[ast.stmt] = (
            node.body
            if isinstance(node, ast.If)
            and isinstance(node.test, ast.Name | ast.Attribute)
            and ast.unparse(node.test).endswith("TYPE_CHECKING")
            else []
        )
        for child in ast.iter_child_nodes(node):
            todo.append((child, typing_only or child in guarded))


def _imports(
    name: str, path: Path, modules: dict[str, Path], *, typing: bool
) -> Iterator[tuple[str, int]]:
    """(imported module of ours, line) for every import statement in the file; with
    `typing` False, not those under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node, typing_only in _statements(tree):
        if typing_only and not typing:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _ours(alias.name, node.lineno, modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                # `from pkg import mod` names a module; `from mod import thing` the module
                yield from _ours(sub if sub in modules else target, node.lineno, modules)


def _ours(target: str, line: int, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    if target.split(".")[0] not in PACKAGES:
        return
    # `import a.b.c` where a.b.c is an attribute: the nearest module that exists
    while target and target not in modules:
        target = target.rpartition(".")[0]
    if target:
        yield target, line


def _graph(*, typing: bool = True) -> dict[str, dict[str, int]]:
    """module → {module of ours it imports: line of the first such import}."""
    modules = _module_files()
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges = graph.setdefault(name, {})
        for target, line in _imports(name, path, modules, typing=typing):
            if target != name:
                edges.setdefault(target, line)
    return graph


def _cycles(graph: dict[str, dict[str, int]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[frozenset[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(graph[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, {}))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        out.append(frozenset(component))
    return out


def test_the_walk_sees_our_modules_and_lazy_imports() -> None:
    graph = _graph()
    assert len(graph) > 150
    # a function-level import is an edge too (web/cli.py loads the optimizer when used)
    assert "optimizer.cli" in graph["web.cli"]
    # a type-only import is an edge of the layering, not of the circle check
    assert "telematics.jt808.server" in graph["telematics.jt808.session"]
    assert "telematics.jt808.server" not in _graph(typing=False)["telematics.jt808.session"]


def test_no_upward_import_between_packages() -> None:
    graph = _graph()
    bad = [
        f"{src}:{line} imports {dst}"
        for src, edges in sorted(graph.items())
        for dst, line in sorted(edges.items())
        if (a := src.split(".")[0]) != (b := dst.split(".")[0]) and b not in ALLOWED[a]
    ]
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_no_import_circle_between_modules() -> None:
    cycles = _cycles(_graph(typing=False))
    unknown = [sorted(c) for c in cycles if c not in KNOWN_CYCLES]
    assert not unknown, f"import circles: {unknown}"


def test_the_cycle_finder_finds_a_circle() -> None:
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}
    assert _cycles(graph) == [frozenset({"a", "b", "c"})]
