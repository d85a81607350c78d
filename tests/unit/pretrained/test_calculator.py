"""ASE calculator: energy against a brute-force sum, forces/stress against finite differences, relax, NVE."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS
from torch import Tensor, nn
from torch_geometric.utils import scatter

from contrast.nn.geometry import edge_vectors, graph_index
from contrast.pretrained.calculator import ContrastCalculator

# Morse parameters of copper (Girifalco & Weizer), with a smooth polynomial envelope.
DEPTH, ALPHA, R0, CUTOFF = 0.3429, 1.3588, 2.866, 5.0


def pair_energy(r):
    """Morse pair energy times ``(1 - (r/rc)^2)^3``: zero with two zero derivatives at the cutoff."""
    lib = torch if isinstance(r, Tensor) else np
    envelope = (1.0 - (r / CUTOFF) ** 2) ** 3
    morse = DEPTH * ((1.0 - lib.exp(-ALPHA * (r - R0))) ** 2 - 1.0)
    return morse * envelope * (r < CUTOFF)


class PairModel(nn.Module):
    """Tiny energy model with the ``EnergyModel`` call signature: ``(data, pos=None, cell=None) -> [B]``."""

    cutoff = CUTOFF

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, data, pos: Tensor | None = None, cell: Tensor | None = None) -> Tensor:
        r = edge_vectors(data, pos, cell).norm(dim=-1)  # [E]
        target = data.edge_index[1]
        # Full neighbour list: each pair appears twice, hence the half.
        per_edge = 0.5 * self.scale * pair_energy(r)  # [E]
        num_graphs = int(getattr(data, "num_graphs", 1) or 1)
        return scatter(per_edge, graph_index(data)[target], dim=0, dim_size=num_graphs, reduce="sum")


def brute_force_energy(atoms: Atoms) -> float:
    """Independent reference: loop over enough periodic images with plain numpy."""
    pos, cell = atoms.get_positions(), atoms.get_cell()[:]
    reach = [
        int(np.ceil(CUTOFF / (atoms.cell.volume / np.linalg.norm(np.cross(*np.delete(cell, k, 0)))))) + 1
        for k in range(3)
    ]
    total = 0.0
    for shift in itertools.product(*(range(-n, n + 1) for n in reach)):
        offset = np.asarray(shift) @ cell
        d = np.linalg.norm(pos[None, :, :] + offset - pos[:, None, :], axis=-1)  # [N, N]
        if not any(shift):
            d = d[~np.eye(len(pos), dtype=bool)]
        d = d[d < CUTOFF]
        total += 0.5 * pair_energy(d).sum()
    return total


def copper(rattle: float = 0.05, seed: int = 0) -> Atoms:
    """Four-atom fcc cell, slightly sheared and rattled so forces and stress are all non-zero."""
    a = 3.7
    cell = np.array([[a, 0.0, 0.0], [0.15, a * 1.02, 0.0], [0.1, -0.2, a * 0.98]])
    frac = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    atoms = Atoms("Cu4", scaled_positions=frac, cell=cell, pbc=True)
    atoms.rattle(rattle, seed=seed)
    return atoms


@pytest.fixture(scope="module")
def calculator() -> ContrastCalculator:
    return ContrastCalculator(PairModel(), dtype=torch.float64)


def test_energy_matches_brute_force_and_is_extensive(calculator):
    atoms = copper()
    atoms.calc = calculator
    energy = atoms.get_potential_energy()
    assert energy == pytest.approx(brute_force_energy(atoms), abs=1e-10)
    assert atoms.get_potential_energy(force_consistent=True) == energy
    supercell = atoms.repeat((2, 1, 1))
    supercell.calc = calculator
    assert supercell.get_potential_energy() == pytest.approx(2 * energy, abs=1e-9)
    np.testing.assert_allclose(supercell.get_stress(), atoms.get_stress(), atol=1e-10)


def test_forces_and_stress_match_finite_differences(calculator):
    atoms = copper()
    atoms.calc = calculator
    forces, stress = atoms.get_forces(), atoms.get_stress()
    assert forces.shape == (4, 3) and stress.shape == (6,)
    assert np.abs(forces).max() > 1e-2 and np.abs(stress).max() > 1e-4  # a non-trivial check
    np.testing.assert_allclose(forces, calculate_numerical_forces(atoms, eps=1e-4), atol=1e-7)
    np.testing.assert_allclose(stress, calculate_numerical_stress(atoms, eps=1e-5, voigt=True), atol=1e-8)
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-10)


def test_results_follow_the_atoms(calculator):
    atoms = copper()
    atoms.calc = calculator
    first = atoms.get_potential_energy()
    atoms.positions[0] += [0.05, 0.0, 0.0]
    assert atoms.get_potential_energy() == pytest.approx(brute_force_energy(atoms), abs=1e-10)
    assert atoms.get_potential_energy() != pytest.approx(first, abs=1e-6)


def test_bfgs_relaxation_lowers_the_energy(calculator):
    atoms = copper(rattle=0.15, seed=3)
    atoms.calc = calculator
    start = atoms.get_potential_energy()
    assert BFGS(atoms, logfile=None).run(fmax=1e-3, steps=200)
    assert atoms.get_potential_energy() < start - 1e-3
    assert np.abs(atoms.get_forces()).max() < 1e-3


@pytest.mark.slow
def test_nve_conserves_energy(calculator):
    atoms = copper(rattle=0.02, seed=1).repeat((2, 1, 1))  # 8 atoms
    atoms.calc = calculator
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    totals = []
    dynamics = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    dynamics.attach(lambda: totals.append(atoms.get_total_energy()), interval=1)
    dynamics.run(200)
    totals = np.asarray(totals)
    kinetic_scale = 1.5 * len(atoms) * units.kB * 300
    assert atoms.get_kinetic_energy() > 0.1 * kinetic_scale  # it really moved
    # Velocity Verlet at 1 fs on a C2-smooth potential drifts ~5e-5 eV here; a force error would not.
    assert np.abs(totals - totals[0]).max() < 2e-4


def test_forward_fn_is_injectable_and_float32_works():
    calls = []

    def forward_fn(model, data, compute_forces=True, compute_stress=False, training=False):
        from contrast.nn.forces import energy_forces_stress

        calls.append((compute_forces, compute_stress, training, data.pos.dtype))
        return energy_forces_stress(model, data, compute_forces, compute_stress, training)

    atoms = copper()
    atoms.calc = ContrastCalculator(PairModel(), cutoff=CUTOFF, dtype=torch.float32, forward_fn=forward_fn)
    atoms.get_forces()
    atoms.get_stress()  # cached: no second call
    assert calls == [(True, True, False, torch.float32)]
    assert atoms.get_potential_energy() == pytest.approx(brute_force_energy(atoms), rel=1e-5)


def test_missing_cutoff_is_a_clear_error():
    with pytest.raises(ValueError, match="cutoff"):
        ContrastCalculator(nn.Linear(1, 1))


def test_real_energy_model_forces_match_finite_differences():
    schnet = pytest.importorskip("contrast.nn.schnet")
    heads = pytest.importorskip("contrast.nn.heads")
    torch.manual_seed(0)
    encoder = schnet.SchNet(hidden_dim=8, num_layers=1, cutoff=3.5, num_rbf=8)
    model = heads.EnergyModel(encoder, heads.EnergyHead(8, hidden_dim=8))
    atoms = copper()
    atoms.calc = ContrastCalculator(model)
    np.testing.assert_allclose(atoms.get_forces(), calculate_numerical_forces(atoms, eps=1e-4), atol=1e-6)
    np.testing.assert_allclose(
        atoms.get_stress(), calculate_numerical_stress(atoms, eps=1e-5, voigt=True), atol=1e-7
    )
