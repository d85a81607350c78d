import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from contrast.nn.heads import EnergyHead, ProjectionHead, PropertyHead, composition_counts
from contrast.testing import to_graph


def test_projection_and_property_shapes():
    x = torch.randn(5, 16)
    assert ProjectionHead(16, 32, 8)(x).shape == (5, 8)
    assert PropertyHead(16, 8, 3)(x).shape == (5, 3)


def test_reference_energies_recover_a_linear_model():
    rng = np.random.default_rng(0)
    true_ref = {13: -3.7, 29: -4.1, 47: -2.9}
    z_list = [rng.choice(list(true_ref), size=rng.integers(2, 9)) for _ in range(40)]
    noise = rng.normal(scale=0.01, size=40)
    energies = [sum(true_ref[z] for z in zs) + n * len(zs) for zs, n in zip(z_list, noise)]
    head = EnergyHead(4, 4, max_z=50)
    ref = head.fit_reference_energies(z_list, energies)
    for z, value in true_ref.items():
        assert ref[z].item() == pytest.approx(value, abs=0.01)
    assert ref[1].item() == 0.0  # absent element
    residual = np.array([(e - sum(ref[z].item() for z in zs)) / len(zs) for zs, e in zip(z_list, energies)])
    assert head.shift.item() == pytest.approx(residual.mean(), abs=1e-6)  # refs stored in float32
    assert head.scale.item() == pytest.approx(residual.std(), rel=1e-3)
    counts = composition_counts(z_list, 50)
    again = EnergyHead(4, 4, max_z=50)
    again.fit_reference_energies(torch.from_numpy(counts), torch.tensor(energies))
    assert torch.allclose(again.ref, head.ref)
    with pytest.raises(ValueError, match="energies"):
        head.fit_reference_energies(z_list, energies[:-1])


def test_energy_head_formula_and_state_dict(energy_model, alloy, primitive, cutoff):
    head = energy_model.head
    data = Batch.from_data_list([to_graph(alloy, cutoff), to_graph(primitive, cutoff)])
    with torch.no_grad():
        features = energy_model.encoder(data)
        energy = energy_model(data)
        raw = head.mlp(features).squeeze(-1)
    per_atom = 0.7 * raw + 0.1 + head.ref[data.z]
    expected = torch.stack([per_atom[data.batch == b].sum() for b in range(2)])
    assert torch.allclose(energy, expected)
    assert {"ref", "scale", "shift"} <= set(head.state_dict())
