"""Imports between ``contrast`` modules flow one way (data -> augment -> nn -> losses -> tasks), no cycles.

Every module is parsed with ``ast``, so imports inside functions count as well. An edge to a package means
an edge to its ``__init__`` (which re-exports its modules), and importing ``contrast.x.y`` also counts as an
edge to the package ``contrast.x`` (whose ``__init__`` runs first); ``from package import name`` is an edge to
the module ``package.name`` when that is a module, else to the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "contrast"

# layer -> the layers its modules must never import
FORBIDDEN = {
    "contrast.data": ("augment", "nn", "losses", "tasks", "probes", "train"),
    "contrast.augment": ("nn", "losses", "tasks", "probes", "train"),
    "contrast.nn": ("losses", "tasks", "probes", "train"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The ``contrast`` modules that module ``name`` imports anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                targets.add(candidate if candidate in modules else source)
    own_packages = {".".join(name.split(".")[:k]) for k in range(1, name.count(".") + 2)}
    resolved = set()
    for target in targets:
        while target and target not in modules:  # ``import contrast.x.y as z`` of a module or a package
            target = target.rpartition(".")[0]
        # importing contrast.x.y also runs contrast/x/__init__.py (unless x is already being imported)
        while target.startswith("contrast.") and target not in own_packages:
            resolved.add(target)
            target = target.rpartition(".")[0]
    return resolved


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state:
                found = visit(target)
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


def test_the_graph_sees_function_level_imports(graph):
    # contrast.data.readers imports contrast.data.extxyz inside a function only
    assert "contrast.data.extxyz" in graph["contrast.data.readers"]


def test_no_import_cycles(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_only_downstream(graph, layer):
    forbidden = tuple(f"contrast.{name}" for name in FORBIDDEN[layer])
    wrong = sorted(
        f"{source} -> {target}"
        for source, targets in graph.items()
        if source == layer or source.startswith(layer + ".")
        for target in targets
        if any(target == f or target.startswith(f + ".") for f in forbidden)
    )
    assert not wrong, f"{layer} imports layers above it: {wrong}"
