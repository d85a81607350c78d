"""Forces and stress: finite differences for every encoder, and ASE's sign conventions as the reference."""

import numpy as np
import pytest
import torch
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.utils import scatter

from contrast.nn.forces import energy_forces_stress
from contrast.nn.geometry import edge_vectors, graph_index
from contrast.testing import (
    assert_close,
    assert_forces_match_finite_differences,
    assert_stress_matches_finite_differences,
    to_graph,
)


class TorchLennardJones(nn.Module):
    """Shifted Lennard-Jones pair energy written on the graph contract, as ASE's LennardJones defines it."""

    def __init__(self, sigma: float, epsilon: float, cutoff: float):
        super().__init__()
        self.sigma, self.epsilon, self.cutoff = sigma, epsilon, cutoff
        self.e0 = 4 * epsilon * ((sigma / cutoff) ** 12 - (sigma / cutoff) ** 6)

    def forward(self, data, pos=None, cell=None):
        d = torch.linalg.vector_norm(edge_vectors(data, pos=pos, cell=cell), dim=-1)  # [E]
        pair = 4 * self.epsilon * ((self.sigma / d) ** 12 - (self.sigma / d) ** 6) - self.e0
        pair = torch.where(d < self.cutoff, pair, torch.zeros_like(pair))
        target = data.edge_index[1]
        num_graphs = int(getattr(data, "num_graphs", 1) or 1)
        return 0.5 * scatter(pair, graph_index(data)[target], dim=0, dim_size=num_graphs, reduce="sum")


def test_forces_and_stress_match_ase_lennard_jones(alloy):
    """Independent reference: ASE's analytic LJ forces and stress fix our signs and the strain convention."""
    cutoff = 4.0
    atoms = alloy.copy()
    atoms.calc = LennardJones(sigma=2.3, epsilon=0.4, rc=cutoff)
    model = TorchLennardJones(2.3, 0.4, cutoff)
    out = energy_forces_stress(model, to_graph(atoms, cutoff), compute_stress=True)
    assert out["energy"].item() == pytest.approx(atoms.get_potential_energy(), rel=1e-10)
    assert_close(out["forces"], torch.from_numpy(atoms.get_forces()), 1e-9, 1e-12, "LJ forces")
    assert_close(out["stress"][0], torch.from_numpy(atoms.get_stress(voigt=False)), 1e-9, 1e-12, "LJ stress")


def test_ase_stress_is_strain_derivative_over_volume(alloy):
    """ASE EMT stress equals (1/V) dE/d(eps) with pos' = pos (I + eps), cell' = cell (I + eps)."""
    atoms = alloy.copy()
    atoms.calc = EMT()
    stress = atoms.get_stress(voigt=False)
    h = 1e-5
    numeric = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            energies = []
            for sign in (1, -1):
                eps = np.zeros((3, 3))
                eps[a, b] = eps[b, a] = sign * h / 2 if a != b else sign * h
                strained = atoms.copy()
                strained.calc = EMT()
                strained.set_cell(atoms.cell[:] @ (np.eye(3) + eps), scale_atoms=False)
                strained.positions = atoms.positions @ (np.eye(3) + eps)
                energies.append(strained.get_potential_energy())
            numeric[a, b] = (energies[0] - energies[1]) / (2 * h) / atoms.get_volume()
    np.testing.assert_allclose(stress, numeric, atol=1e-8)
    assert np.abs(stress).max() > 1e-3


def test_forces_match_finite_differences(energy_model, alloy, primitive, cutoff):
    batch = Batch.from_data_list([to_graph(primitive, cutoff), to_graph(alloy, cutoff)])
    assert_forces_match_finite_differences(energy_model, batch)


def test_stress_matches_finite_differences(energy_model, alloy, primitive, cutoff):
    batch = Batch.from_data_list([to_graph(alloy, cutoff), to_graph(primitive, cutoff)])
    assert_stress_matches_finite_differences(energy_model, batch)


def test_works_under_no_grad_and_detaches(energy_model, alloy, cutoff):
    data = to_graph(alloy, cutoff)
    with torch.no_grad():
        out = energy_forces_stress(energy_model, data, compute_stress=True)
    assert out["forces"].shape == (len(alloy), 3) and out["stress"].shape == (1, 3, 3)
    assert not any(value.requires_grad for value in out.values())
    assert not data.pos.requires_grad
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        energy_forces_stress(energy_model, data)


def test_training_force_loss_reaches_weights(build_encoder, alloy, cutoff):
    """create_graph=True: a force loss has gradients, equal to finite differences in one weight."""
    from contrast.nn.heads import EnergyHead, EnergyModel

    torch.manual_seed(0)
    model = EnergyModel(build_encoder("painn"), EnergyHead(16, 16, max_z=40).double())
    data = to_graph(alloy, cutoff)

    def loss_fn():
        out = energy_forces_stress(model, data, compute_stress=True, training=True)
        return (out["forces"] ** 2).sum() + (out["stress"] ** 2).sum()

    weight = model.encoder.messages[0].filter.weight
    (grad,) = torch.autograd.grad(loss_fn(), weight)
    h = 1e-6
    with torch.no_grad():
        weight[0, 0] += h
    plus = loss_fn().item()
    with torch.no_grad():
        weight[0, 0] -= 2 * h
    minus = loss_fn().item()
    with torch.no_grad():
        weight[0, 0] += h
    assert grad[0, 0].item() == pytest.approx((plus - minus) / (2 * h), rel=1e-5, abs=1e-10)
    assert grad.abs().max() > 0
