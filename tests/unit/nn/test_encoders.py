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
