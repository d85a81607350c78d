"""Imports between ``contrast`` packages flow one way, with no cycles:
graph -> data -> augment -> nn -> testing -> losses -> pretrained -> embeddings -> evaluation -> tasks -> cli
(a package imports only those to its left); pretrained/ and embeddings/ never import Lightning or Hydra.

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

# Packages (and top-level modules) from the bottom up: each may import only itself and those before it.
LAYERS = (
    ("graph",),
    ("data",),
    ("augment",),
    ("nn",),
    ("testing",),
    ("losses",),
    ("pretrained",),
    ("embeddings",),
    ("evaluation",),
    ("tasks",),
    ("cli", "train", "evaluate", "export", "__main__"),  # the commands and their `python -m` modules
)
FORBIDDEN = {
    f"contrast.{name}": tuple(above for later in LAYERS[level + 1 :] for above in later)
    for level, names in enumerate(LAYERS)
    for name in names
}
LIGHT = ("contrast.pretrained", "contrast.embeddings")  # importable without Lightning or Hydra
HEAVY = ("pytorch_lightning", "lightning", "hydra", "omegaconf")


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
    # contrast.data.io.readers imports contrast.data.io.extxyz inside a function only
    assert "contrast.data.io.extxyz" in graph["contrast.data.io.readers"]


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


def test_every_module_belongs_to_a_layer():
    names = {name for layer in LAYERS for name in layer}
    loose = sorted(m for m in all_modules() if m.count(".") >= 1 and m.split(".")[1] not in names)
    assert not loose, f"modules outside the layers: {loose}"


@pytest.mark.parametrize("package", LIGHT)
def test_pretrained_and_embeddings_stay_light(package):
    heavy = []
    for name, path in all_modules().items():
        if name != package and not name.startswith(package + "."):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                modules = [node.module or ""]
            heavy += [f"{name} -> {m}" for m in modules if m.split(".")[0] in HEAVY]
    assert not heavy, f"{package} imports Lightning or Hydra: {heavy}"
