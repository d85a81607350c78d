"""Crystal graphs against a brute-force periodic neighbour search over all images (plain numpy)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from pymatgen.core import Lattice, Structure

import contrast
from contrast.graph.convert import StructureError

ELEMENTS = ["H", "C", "O", "Si", "Fe", "Cu", "Ba", "Xe"]


def brute_force_pairs(pos: np.ndarray, cell: np.ndarray, cutoff: float) -> dict[tuple, float]:
    """Every (i, j, shift) with |pos[j] - pos[i] + shift @ cell| < cutoff, except an atom's own zero image."""
    volume = abs(np.linalg.det(cell))
    heights = [volume / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3])) for k in range(3)]
    # fractional coordinates may lie anywhere in [-1, 2), so one extra image on each side covers them
    frac = pos @ np.linalg.inv(cell)
    spread = np.ceil(frac.max(0) - frac.min(0)).astype(int)
    reach = [int(np.ceil(cutoff / h)) + int(s) + 1 for h, s in zip(heights, spread)]
    grids = np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij")
    shifts = np.stack([g.ravel() for g in grids], axis=1)  # [S, 3]
    offsets = shifts @ cell  # [S, 3]
    pairs = {}
    for i in range(len(pos)):
        for j in range(len(pos)):
            vec = pos[j] - pos[i] + offsets  # [S, 3]
            dist = np.linalg.norm(vec, axis=1)
            for k in np.flatnonzero(dist < cutoff):
                if i == j and not shifts[k].any():
                    continue
                pairs[(i, j, *shifts[k].tolist())] = float(dist[k])
    return pairs


def graph_pairs(graph) -> dict[tuple, float]:
    pos = graph.pos.double().numpy()
    cell = graph.cell[0].double().numpy()
    j, i = graph.edge_index.numpy()
    shift = graph.cell_shift.numpy().round().astype(int)
    vec = pos[j] - pos[i] + shift @ cell
    dist = np.linalg.norm(vec, axis=1)
    keys = [(int(a), int(b), *s.tolist()) for a, b, s in zip(i, j, shift)]
    assert len(set(keys)) == len(keys), "duplicate edges"
    return dict(zip(keys, dist.tolist()))


def random_crystal(rng: np.random.Generator, n_atoms: int, skew: float) -> tuple[np.ndarray, np.ndarray]:
    lengths = rng.uniform(1.5, 5.0, 3)
    cell = np.diag(lengths)
    cell[1, 0] = skew * rng.uniform(-1, 1) * lengths[0]
    cell[2, :2] = skew * rng.uniform(-1, 1, 2) * lengths[:2]
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))  # random rotation keeps the cell a general triclinic one
    cell = cell @ q
    for attempt in range(200):
        n = max(1, n_atoms - attempt // 20)  # crowded small cells take fewer atoms
        frac = rng.uniform(-0.2, 1.2, (n, 3))  # partly outside the cell, as real files have
        pos = frac @ cell
        if not brute_force_pairs(pos, cell, 0.7):
            return pos, cell
    raise RuntimeError("could not place atoms")


def cases(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        n_atoms = 1 if k % 5 == 0 else int(rng.integers(2, 7))
        skew = 2.0 if k % 3 == 0 else 0.3
        pos, cell = random_crystal(rng, n_atoms, skew)
        n_atoms = len(pos)
        shortest = min(np.linalg.norm(cell, axis=1))
        cutoff = float(rng.uniform(1.2, 2.5) * shortest) if k % 2 else float(rng.uniform(1.0, 4.0))
        z = rng.integers(1, 60, n_atoms)
        out.append((z, pos, cell, min(cutoff, 6.0)))
    return out


CASES = cases(220)


def assert_same_pairs(got: dict, want: dict, cutoff: float) -> None:
    # pairs within 1e-9 Å of the cutoff may fall either way in floating point
    near = {k for k, d in {**got, **want}.items() if abs(d - cutoff) < 1e-9}
    assert set(got) - near == set(want) - near
    for key in set(want) - near:
        assert got[key] == pytest.approx(want[key], abs=1e-9)


@pytest.fixture(autouse=True)
def float64():
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.mark.parametrize("kind", ["ase", "pymatgen"])
def test_matches_brute_force(kind: str):
    long_cutoff_cases = 0
    for z, pos, cell, cutoff in CASES:
        if kind == "ase":
            structure = Atoms(numbers=z, positions=pos, cell=cell, pbc=True)
        else:
            structure = Structure(Lattice(cell), z.tolist(), pos, coords_are_cartesian=True)
        graph = contrast.structure_to_graph(structure, cutoff=cutoff, require_neighbours=False)
        want = brute_force_pairs(pos, cell, cutoff)
        assert_same_pairs(graph_pairs(graph), want, cutoff)
        assert graph.z.tolist() == z.tolist()
        long_cutoff_cases += cutoff > min(np.linalg.norm(cell, axis=1))
    assert long_cutoff_cases > 50  # many cases where one atom's images are its neighbours


def test_one_atom_cell_sees_its_images():
    atoms = Atoms("Cu", positions=[[0, 0, 0]], cell=np.diag([2.0, 2.0, 2.0]), pbc=True)
    graph = contrast.structure_to_graph(atoms, cutoff=2.1)
    assert graph.edge_index.shape[1] == 6  # the six face neighbours of a simple cubic lattice
    assert (graph.edge_index == 0).all()


def test_batched_matches_single():
    structures = [Atoms(numbers=z, positions=p, cell=c, pbc=True) for z, p, c, _ in CASES[:30]]
    graphs = contrast.structures_to_graphs(structures, cutoff=3.0, require_neighbours=False)
    for graph, (_, pos, cell, _) in zip(graphs, CASES[:30]):
        assert_same_pairs(graph_pairs(graph), brute_force_pairs(pos, cell, 3.0), 3.0)


def test_batched_names_the_bad_entry():
    good = Atoms("Cu", positions=[[0, 0, 0]], cell=np.eye(3) * 2.5, pbc=True)
    bad = Atoms("Cu2", positions=[[0, 0, 0], [0.1, 0, 0]], cell=np.eye(3) * 2.5, pbc=True)
    with pytest.raises(StructureError, match=r"file x\.xyz, entry 1: atoms .* apart"):
        contrast.structures_to_graphs([good, bad], cutoff=3.0, source="x.xyz")
