"""Every encoder: shapes, dtypes, batching, symmetry, supercells, smoothness (via contrast.testing)."""

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from contrast.nn.base import CrystalEncoder, num_parameters
from contrast.testing import (
    assert_close,
    assert_equivariant,
    assert_invariant,
    assert_smooth_at_cutoff,
    assert_supercell_consistent,
    to_graph,
)


def test_shapes_and_float64(encoder, alloy, cutoff):
    data = to_graph(alloy, cutoff)
    features = encoder(data)
    assert isinstance(encoder, CrystalEncoder)
    assert features.shape == (len(alloy), 16) and features.dtype == torch.float64
    assert encoder.embed(data).shape == (1, 16)
    assert num_parameters(encoder) > 0


@pytest.mark.parametrize("name", ["cgcnn", "painn", "schnet"])
def test_float32(name, alloy, cutoff, build_encoder):
    encoder = build_encoder(name).float()
    data = to_graph(alloy, cutoff, dtype=torch.float32)
    assert encoder(data).dtype == torch.float32
    reference = build_encoder(name)(to_graph(alloy, cutoff))
    assert torch.allclose(encoder(data).double(), reference, atol=1e-4)


def test_batch_independent(energy_model, alloy, primitive, cutoff):
    a, b = to_graph(alloy, cutoff), to_graph(primitive, cutoff)
    with torch.no_grad():
        batched = energy_model(Batch.from_data_list([a, b, a]))
        single = torch.cat([energy_model(a), energy_model(b), energy_model(a)])
        embedded = energy_model.encoder.embed(Batch.from_data_list([b, a]))
        embedded_single = torch.cat([energy_model.encoder.embed(b), energy_model.encoder.embed(a)])
    assert_close(batched, single, 1e-10, 1e-12, "batched energies")
    assert_close(embedded, embedded_single, 1e-10, 1e-12, "batched embeddings")


@pytest.mark.parametrize("which", ["alloy", "primitive"])
def test_invariances(encoder, energy_model, which, request, cutoff):
    structure = request.getfixturevalue(which)
    with torch.no_grad():
        assert_invariant(encoder.embed, structure, cutoff)
        assert_invariant(energy_model, structure, cutoff, seed=1)


def test_supercell(encoder, energy_model, alloy, primitive, cutoff):
    with torch.no_grad():
        assert_supercell_consistent(encoder.embed, alloy, cutoff)
        assert_supercell_consistent(energy_model, alloy, cutoff, extensive=True)
        assert_supercell_consistent(energy_model, primitive, cutoff, repeat=(1, 3, 2), extensive=True)


def test_painn_vectors_are_equivariant(alloy, cutoff, build_encoder):
    painn = build_encoder("painn")
    with torch.no_grad():
        assert_equivariant(lambda data: painn.forward_with_vectors(data)[1], alloy, cutoff, seed=5)
        _, v = painn.forward_with_vectors(to_graph(alloy, cutoff))
    assert v.abs().max() > 1e-3  # otherwise the equivariance check is vacuous


def test_smooth_at_cutoff(energy_model, cutoff):
    assert_smooth_at_cutoff(energy_model, cutoff)
    assert_smooth_at_cutoff(energy_model, cutoff, numbers=(13, 29))


def test_interactions_reach_beyond_one_shell(encoder, alloy, cutoff):
    """Moving one atom changes every atom's features (messages pass), and the embedding differs by species."""
    data = to_graph(alloy, cutoff)
    moved = alloy.copy()
    moved.positions[0] += np.array([0.05, -0.02, 0.03])
    with torch.no_grad():
        delta = (encoder(to_graph(moved, cutoff)) - encoder(data)).abs().amax(dim=1)
    assert (delta > 1e-6).all()


# First three features of each atom of a seeded encoder on a fixed distorted Cu2NiAl cell, recorded from the
# encoders before their layer outputs were exposed (identical to 1e-16 then): a refactor of `forward` that
# changes any number fails here.
RECORDED_FEATURES = {
    "cgcnn": [
        [0.48463570109234755, -0.005620665745743951, 0.6706766637051201],
        [0.2897712645335913, 0.9275133300204347, 0.863128054346644],
        [0.4837364263828181, -0.5336026897250844, 0.8819030856811881],
        [0.4841235662047363, -0.0045757020942492985, 0.6705705843163156],
    ],
    "painn": [
        [-1.0200164664143614, -0.7433586742243824, 0.5391538640488706],
        [-1.5520738312686004, 1.4349911001232363, 1.0350029293628202],
        [-0.8654636235560965, -0.2262494229529856, 1.4674693300023232],
        [-1.0206088391101407, -0.7445373392948192, 0.5372041976997436],
    ],
    "schnet": [
        [-0.3398313175947858, -0.360961765162477, -0.12971235487392596],
        [-0.6780036799465461, 1.6114293954122982, 0.586342914063579],
        [0.060055934883138595, 0.25208747700315115, 0.7448454323017669],
        [-0.3401139071353108, -0.3612042304981815, -0.1299079323381219],
    ],
}


@pytest.mark.parametrize("name", sorted(RECORDED_FEATURES))
def test_features_equal_the_recorded_values(name):
    from ase.build import bulk

    from contrast.graph.convert import structure_to_graph
    from tests.unit.nn.conftest import ENCODERS

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.numbers[[1, 2]] = [28, 13]
    noise = torch.randn(atoms.positions.shape, generator=torch.Generator().manual_seed(0)).numpy()
    atoms.positions += noise * 0.05
    graph = structure_to_graph(atoms, 4.0, dtype=torch.float64)
    torch.manual_seed(0)
    encoder = ENCODERS[name](hidden_dim=8, num_layers=2, cutoff=4.0, num_rbf=8, max_z=40).double().eval()
    with torch.no_grad():
        features = encoder(graph)[:, :3]
    expected = torch.tensor(RECORDED_FEATURES[name], dtype=torch.float64)
    torch.testing.assert_close(features, expected, rtol=1e-9, atol=1e-12)
