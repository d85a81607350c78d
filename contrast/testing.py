"""Physics checks for encoders and energy models, as library assertions.

Tests and notebooks call the same functions. Each raises ``AssertionError`` with a message saying what broke.
Run them in float64 (``model.double()``): the graphs built here follow ``dtype``.

Structures may be ``ase.Atoms``, pymatgen ``Structure`` or contract ``Data`` graphs (converted back to atoms).
``model_fn`` is any callable ``Data/Batch -> Tensor [B, ...]`` (``encoder.embed``, an ``EnergyModel``, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from ase import Atoms
from torch import Tensor

from contrast.graph.convert import structure_to_graph
from contrast.nn.forces import apply_strain, energy_forces_stress
from contrast.nn.geometry import graph_index

ModelFn = Callable[..., Tensor]
INVARIANCES = ("rotation", "translation", "permutation", "wrap", "cell")

__all__ = [
    "INVARIANCES",
    "as_atoms",
    "random_rotation",
    "to_graph",
    "assert_close",
    "assert_invariant",
    "assert_supercell_consistent",
    "assert_equivariant",
    "assert_forces_match_finite_differences",
    "assert_stress_matches_finite_differences",
    "assert_smooth_at_cutoff",
]


def as_atoms(structure) -> Atoms:
    """A periodic ``ase.Atoms`` copy of an ``Atoms``, a pymatgen ``Structure`` or one contract ``Data``."""
    if isinstance(structure, Atoms):
        return structure.copy()
    if hasattr(structure, "lattice") and hasattr(structure, "sites"):
        from pymatgen.io.ase import AseAtomsAdaptor

        return AseAtomsAdaptor.get_atoms(structure)
    if hasattr(structure, "z") and hasattr(structure, "pos") and hasattr(structure, "cell"):
        cell = structure.cell.detach().cpu().double().reshape(-1, 3, 3)
        if cell.shape[0] != 1:
            raise ValueError(f"expected a single graph, got a batch of {cell.shape[0]}")
        return Atoms(
            numbers=structure.z.cpu().numpy(),
            positions=structure.pos.detach().cpu().double().numpy(),
            cell=cell[0].numpy(),
            pbc=True,
        )
    raise TypeError(f"cannot turn {type(structure).__name__} into ase.Atoms")


def to_graph(
    structure, cutoff: float, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"
):
    """Contract graph of ``structure`` in ``dtype`` on ``device`` (atoms may be left without neighbours)."""
    atoms = as_atoms(structure)
    return structure_to_graph(atoms, cutoff=cutoff, require_neighbours=False, dtype=dtype).to(device)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation matrix [3, 3] (QR of a Gaussian matrix, sign-fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def assert_close(actual: Tensor, expected: Tensor, rtol: float, atol: float, what: str) -> None:
    """Check ``|actual - expected| <= atol + rtol * max|expected|``; otherwise raise naming ``what``."""
    actual = torch.as_tensor(actual).detach().double().cpu()
    expected = torch.as_tensor(expected).detach().double().cpu()
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {tuple(actual.shape)} != expected {tuple(expected.shape)}")
    error = (actual - expected).abs().max().item() if actual.numel() else 0.0
    bound = atol + rtol * (expected.abs().max().item() if expected.numel() else 0.0)
    if not error <= bound:
        raise AssertionError(
            f"{what}: max abs error {error:.3e} exceeds {bound:.3e} (rtol={rtol}, atol={atol})"
        )


def _transformed(atoms: Atoms, kind: str, rng: np.random.Generator) -> Atoms:
    out = atoms.copy()
    if kind == "rotation":
        rotation = random_rotation(rng)
        out.set_cell(atoms.cell[:] @ rotation.T, scale_atoms=False)
        out.positions = atoms.positions @ rotation.T
    elif kind == "translation":
        out.positions = atoms.positions + rng.normal(scale=3.0, size=3)
    elif kind == "permutation":
        out = atoms[rng.permutation(len(atoms))]
    elif kind == "wrap":
        images = rng.integers(-2, 3, size=(len(atoms), 3))
        out.positions = atoms.positions + images @ atoms.cell[:]
    elif kind == "cell":
        # A unimodular integer matrix generates the same lattice from a different (unreduced) basis.
        unimodular = np.array([[1, 1, 0], [0, 1, 0], [0, -1, 1]]) @ np.array(
            [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
        )
        out.set_cell(unimodular @ atoms.cell[:], scale_atoms=False)
    else:
        raise ValueError(f"unknown invariance {kind!r}; choose from {INVARIANCES}")
    return out


def assert_invariant(
    model_fn: ModelFn,
    structure,
    cutoff: float = 5.0,
    invariances: Sequence[str] = INVARIANCES,
    seed: int = 0,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    dtype: torch.dtype = torch.float64,
) -> None:
    """Assert ``model_fn(graph)`` [1, ...] is unchanged by operations that leave the crystal the same.

    Each operation is applied to the structure and the graph is rebuilt: ``rotation`` (random),
    ``translation``, ``permutation`` of the atoms, ``wrap`` (integer lattice vectors added to positions)
    and ``cell`` (an equivalent basis ``M @ cell`` with a unimodular integer ``M``).
    """
    atoms = as_atoms(structure)
    rng = np.random.default_rng(seed)
    device = _device_of(model_fn)
    reference = model_fn(to_graph(atoms, cutoff, dtype, device))
    for kind in invariances:
        output = model_fn(to_graph(_transformed(atoms, kind, rng), cutoff, dtype, device))
        assert_close(output, reference, rtol, atol, f"not invariant to {kind}")


def assert_supercell_consistent(
    model_fn: ModelFn,
    structure,
    cutoff: float = 5.0,
    repeat: tuple[int, int, int] = (2, 2, 2),
    extensive: bool = False,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    dtype: torch.dtype = torch.float64,
) -> None:
    """Assert a supercell gives the same output (``extensive=False``, e.g. mean-pooled embeddings) or the
    output times the number of cells (``extensive=True``, e.g. total energies)."""
    atoms = as_atoms(structure)
    device = _device_of(model_fn)
    single = model_fn(to_graph(atoms, cutoff, dtype, device))
    supercell = model_fn(to_graph(atoms.repeat(repeat), cutoff, dtype, device))
    factor = int(np.prod(repeat)) if extensive else 1
    what = f"{'extensive' if extensive else 'intensive'} output of a {repeat} supercell"
    assert_close(supercell, factor * single, rtol, atol, what)


def assert_equivariant(
    vector_fn: ModelFn,
    structure,
    cutoff: float = 5.0,
    seed: int = 0,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    dtype: torch.dtype = torch.float64,
) -> None:
    """Assert per-atom vectors ``vector_fn(graph)`` [N, 3, ...] rotate with the structure: f(R x) = R f(x)."""
    atoms = as_atoms(structure)
    rotation = random_rotation(np.random.default_rng(seed))
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell[:] @ rotation.T, scale_atoms=False)
    rotated.positions = atoms.positions @ rotation.T
    device = _device_of(vector_fn)
    v = vector_fn(to_graph(atoms, cutoff, dtype, device))  # [N, 3, ...]
    v_rot = vector_fn(to_graph(rotated, cutoff, dtype, device))  # [N, 3, ...]
    r = torch.as_tensor(rotation, dtype=v.dtype, device=v.device)
    expected = torch.einsum("ij,nj...->ni...", r, v)
    assert_close(v_rot, expected, rtol, atol, "vector features do not rotate with the structure")


def _device_of(fn) -> torch.device:
    owner = getattr(fn, "__self__", fn)
    parameters = getattr(owner, "parameters", None)
    if callable(parameters):
        for parameter in parameters():
            return parameter.device
    return torch.device("cpu")


def _energy(model: ModelFn, data, pos: Tensor, cell: Tensor) -> Tensor:
    with torch.no_grad():
        return model(data, pos=pos, cell=cell).sum()


def assert_forces_match_finite_differences(
    model: ModelFn, data, eps: float = 1e-4, rtol: float = 1e-6, atol: float = 1e-8
) -> None:
    """Assert autograd forces equal central differences of the energy, -(E(x+h) - E(x-h)) / 2h, coordinate
    by coordinate, and sum to zero in each structure.

    ``model(data, pos=, cell=) -> [B]``; costs 6N energy evaluations, so keep ``data`` small.
    """
    forces = energy_forces_stress(model, data, compute_forces=True)["forces"]  # [N, 3]
    pos, cell = data.pos.detach(), data.cell.detach()
    numeric = torch.zeros_like(pos)
    for atom in range(pos.shape[0]):
        for axis in range(3):
            step = torch.zeros_like(pos)
            step[atom, axis] = eps
            plus, minus = _energy(model, data, pos + step, cell), _energy(model, data, pos - step, cell)
            numeric[atom, axis] = -(plus - minus) / (2 * eps)
    assert_close(forces, numeric, rtol, atol, "forces differ from finite differences of the energy")
    num_graphs = int(getattr(data, "num_graphs", 1) or 1)
    net = torch.zeros(num_graphs, 3, dtype=forces.dtype, device=forces.device)
    net.index_add_(0, graph_index(data), forces)
    scale = forces.abs().max().item()
    assert_close(
        net, torch.zeros_like(net), 0.0, atol + rtol * scale, "forces do not sum to zero per structure"
    )


def assert_stress_matches_finite_differences(
    model: ModelFn, data, eps: float = 1e-4, rtol: float = 1e-6, atol: float = 1e-8
) -> None:
    """Assert autograd stress equals (1/V) times central differences of the energy under a symmetric strain
    applied to positions and cell, component by component, and is symmetric."""
    stress = energy_forces_stress(model, data, compute_forces=False, compute_stress=True)[
        "stress"
    ]  # [B, 3, 3]
    pos, cell = data.pos.detach(), data.cell.detach()
    batch = graph_index(data)
    volume = torch.linalg.det(cell).abs()  # [B]
    numeric = torch.zeros_like(stress)
    for a in range(3):
        for b in range(3):
            strain = torch.zeros_like(stress)
            strain[:, a, b] = eps
            energies = []
            for sign in (1.0, -1.0):
                strained_pos, strained_cell = apply_strain(pos, cell, batch, sign * strain)
                with torch.no_grad():
                    energies.append(model(data, pos=strained_pos, cell=strained_cell))  # [B]
            numeric[:, a, b] = (energies[0] - energies[1]) / (2 * eps) / volume
    assert_close(
        stress, numeric, rtol, atol, "stress differs from finite differences of the energy under strain"
    )
    assert_close(
        stress, stress.transpose(1, 2), 0.0, atol + rtol * stress.abs().max().item(), "stress asymmetric"
    )


def assert_smooth_at_cutoff(
    model: ModelFn,
    cutoff: float,
    numbers: tuple[int, int] = (29, 29),
    delta: float = 1e-6,
    tol: float = 1e-8,
    dtype: torch.dtype = torch.float64,
) -> None:
    """Assert energy and forces do not jump when an atom moves through the cutoff of its only neighbour.

    Two atoms sit in a cubic cell of edge 3 x cutoff (so no other image is in range), at distances
    ``cutoff - delta`` and ``cutoff + delta``: the neighbour list changes between the two, the physics must
    not.
    """
    device = _device_of(model)
    results = []
    for distance in (cutoff - delta, cutoff + delta):
        atoms = Atoms(
            numbers=list(numbers), positions=[[0, 0, 0], [distance, 0, 0]], cell=[3 * cutoff] * 3, pbc=True
        )
        data = to_graph(atoms, cutoff, dtype, device)
        results.append((data.edge_index.shape[1], energy_forces_stress(model, data, compute_forces=True)))
    (edges_in, inside), (edges_out, outside) = results
    if edges_in == edges_out:
        raise AssertionError(
            f"the neighbour list did not change across the cutoff ({edges_in} edges both times)"
        )
    assert_close(
        inside["energy"], outside["energy"], 0.0, tol, "energy jumps when an atom crosses the cutoff"
    )
    assert_close(inside["forces"], outside["forces"], 0.0, tol, "forces jump when an atom crosses the cutoff")
