"""The package's modules import one another without a circle.

Every import statement counts, also one inside a function or under ``TYPE_CHECKING``: a
circle that only closes at call time still means two modules that cannot be understood,
changed or tested one without the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

from ..process import ROOT

PACKAGE = ROOT / "aiowsgi"
NAME = PACKAGE.name


def _module_name(path: Path) -> str:
    return NAME if path.stem == "__init__" else f"{NAME}.{path.stem}"


def _imported(tree: ast.Module, modules: set[str]) -> set[str]:
    """The package's modules that ``tree`` imports (the package itself for a name its
    ``__init__`` defines, such as ``from . import __version__``)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module is not None:
                base = node.module
            elif node.level == 1:
                base = NAME + (f".{node.module}" if node.module else "")
            else:
                continue  # above the package: not one of its modules
            if base not in modules:
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in modules else base)
    return found


def import_graph() -> dict[str, set[str]]:
    """Each module of the package, and the package's modules it imports."""
    paths = {_module_name(path): path for path in sorted(PACKAGE.glob("*.py"))}
    modules = set(paths)
    return {name: _imported(ast.parse(path.read_text(encoding="utf-8")), modules) - {name}
            for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports, as the modules along it (the first repeated at the end)."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module):], module]
        if module in done:
            return None
        path.append(module)
        for imported in sorted(graph.get(module, ())):
            cycle = visit(imported)
            if cycle is not None:
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module)
        if cycle is not None:
            return cycle
    return None


def test_the_package_imports_no_module_that_imports_it_back() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_graph_sees_imports_inside_functions_and_from_the_package() -> None:
    """The checker itself: a function-level import and ``from . import x`` are edges."""
    graph = import_graph()
    assert f"{NAME}.runner" in graph[f"{NAME}.cli"]
    assert f"{NAME}.metrics" in graph[f"{NAME}.runner"]  # from . import allocator, metrics
    assert NAME in graph[f"{NAME}.cli"]  # from . import __version__
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_a_function_level_import_is_an_edge() -> None:
    tree = ast.parse("def f():\n    from .cli import main\n")
    assert _imported(tree, {NAME, f"{NAME}.cli"}) == {f"{NAME}.cli"}
