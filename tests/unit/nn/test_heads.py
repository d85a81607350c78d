import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from contrast.data.composition import element_counts
from contrast.nn.heads import EnergyHead, ProjectionHead, PropertyHead
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
    counts = element_counts(z_list, max_z=50)
    again = EnergyHead(4, 4, max_z=50)
    again.fit_reference_energies(torch.from_numpy(counts), torch.tensor(energies))
    assert torch.allclose(again.ref, head.ref)
    with pytest.raises(ValueError, match="energies"):
        head.fit_reference_energies(z_list, energies[:-1])


def test_reference_energies_from_structures_and_the_shared_column_convention():
    # element_counts (contrast.data.composition) is the one featurisation: column Z counts element Z, which
    # is also the index of ``ref``; structures of any kind go in, and errors name the entry.
    from ase.build import bulk
    from torch_geometric.data import Data

    rocksalt = bulk("NaCl", "rocksalt", a=5.64)
    items = [rocksalt, rocksalt.repeat((2, 1, 1)), Data(z=torch.tensor([11, 11, 11])), np.array([17, 17])]
    energies = [-4.5, -9.0, -6.0, -5.0]  # Na -2, Cl -2.5 per atom
    head = EnergyHead(4, 4, max_z=20)
    ref = head.fit_reference_energies(items, energies, normalise=False)
    assert ref[11].item() == pytest.approx(-2.0) and ref[17].item() == pytest.approx(-2.5)
    assert torch.count_nonzero(ref).item() == 2
    counts = element_counts(items, max_z=20)
    assert counts[0, 11] == counts[0, 17] == 1
    again = EnergyHead(4, 4, max_z=20)
    again.fit_reference_energies(counts, energies, normalise=False)
    assert torch.equal(again.ref, head.ref)
    with pytest.raises(ValueError, match="entry 2: atomic number 30 outside 1..20"):
        head.fit_reference_energies([[11], [17], [30]], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="entry 0: no atoms"):
        head.fit_reference_energies([np.array([], dtype=int)], [1.0])
    with pytest.raises(ValueError, match="count matrix has 20 columns, expected max_z \\+ 1 = 21"):
        head.fit_reference_energies(np.ones((2, 20)), [1.0, 2.0])


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
