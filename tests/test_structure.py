"""The package's shape: modules a reader can hold in mind, no cycles, private names kept in.

Read from the source with `ast` (imports inside functions count), so a new module or a new
import is checked the day it is written.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import compacting_supervisor

PACKAGE = Path(compacting_supervisor.__file__).parent
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_private(module: str) -> bool:
    """A module is private when any part of its dotted name after the package starts with _."""
    return any(part.startswith("_") for part in module.split(".")[1:] if part != "__init__")


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if MODULES[module].name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _imports(module: str) -> list[tuple[str, list[str]]]:
    """(imported module, names) for every import in ``module``, nested ones included."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _resolve(module, node)
            if not source.startswith("compacting_supervisor"):
                continue
            names = [alias.name for alias in node.names]
            found.append((source, names))
            # `from package import submodule` imports the submodule too.
            found.extend((f"{source}.{n}", []) for n in names if f"{source}.{n}" in MODULES)
        elif isinstance(node, ast.Import):
            found.extend(
                (alias.name, [])
                for alias in node.names
                if alias.name.startswith("compacting_supervisor")
            )
    return found


def _edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for module in MODULES:
        for source, _ in _imports(module):
            if source in MODULES and source != module:
                graph[module].add(source)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in ``graph`` as a path, or None. A package's ``__init__`` re-exporting its own
    submodules is not a cycle of logic, so edges from a package into itself are left out."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def inside(parent: str, child: str) -> bool:
        return MODULES[parent].name == "__init__.py" and child.startswith(parent + ".")

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if inside(node, nxt):
                continue
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_counting_imports_inside_functions() -> None:
    assert _cycle(_edges()) is None


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {name: set() for name in MODULES}
    a, b = "compacting_supervisor.errors", "compacting_supervisor.results"
    graph[a].add(b)
    graph[b].add(a)
    assert _cycle(graph) in ([a, b, a], [b, a, b])


def test_no_private_name_is_imported_from_a_public_module() -> None:
    offenders = [
        f"{module} imports {name} from {source}"
        for module in MODULES
        for source, names in _imports(module)
        if source in MODULES and not _is_private(source)
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert offenders == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_over_600_lines(module: str) -> None:
    lines = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines; split it along a seam"


def test_the_package_map_names_every_module() -> None:
    """src/compacting_supervisor/README.md draws the map: each module is on it."""
    text = (PACKAGE / "README.md").read_text(encoding="utf-8")
    missing = [
        path.relative_to(PACKAGE).as_posix()
        for path in MODULES.values()
        if path.name != "__init__.py" and path.relative_to(PACKAGE).as_posix() not in text
    ]
    assert missing == []
