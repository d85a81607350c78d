"""Graph readouts with several poolings: widths, values against numpy, and the crystal's invariances."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from contrast.graph.convert import structure_to_graph
from contrast.nn.base import check_pooling
from contrast.testing import assert_invariant, assert_supercell_consistent
from tests.unit.nn.conftest import ENCODERS


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_several_poolings_are_invariant_and_supercell_consistent(name, alloy, cutoff):
    torch.manual_seed(0)
    encoder = ENCODERS[name](
        hidden_dim=8, num_layers=2, cutoff=cutoff, num_rbf=8, max_z=40, pooling="mean+std+max"
    )
    encoder = encoder.double().eval()
    assert encoder.embedding_dim == 24 and encoder.feature_dim == 8
    with torch.no_grad():
        assert_invariant(encoder.embed, alloy, cutoff)
        assert_supercell_consistent(encoder.embed, alloy, cutoff)


def test_pooled_values_against_numpy(alloy, primitive, cutoff):
    torch.manual_seed(0)
    encoder = (
        ENCODERS["schnet"](hidden_dim=8, num_layers=1, cutoff=cutoff, num_rbf=8, max_z=40).double().eval()
    )
    graphs = [structure_to_graph(s, cutoff, dtype=torch.float64) for s in (alloy, primitive)]
    batch = Batch.from_data_list(graphs)
    with torch.no_grad():
        features = encoder(batch).numpy()  # [N, 8]
        encoder.pooling = "max+mean+std"
        pooled = encoder.embed(batch).numpy()  # [2, 24]
    index = batch.batch.numpy()
    for g in range(2):
        rows = features[index == g]
        expected = np.concatenate([rows.max(0), rows.mean(0), np.sqrt(rows.var(0) + 1e-8)])
        np.testing.assert_allclose(pooled[g], expected, rtol=1e-10, atol=1e-12)


def test_pooling_names_are_checked():
    assert check_pooling("mean+max") == "mean+max"
    for bad in ("sum", "mean+mean", "", "mean+"):
        with pytest.raises(ValueError, match="pooling"):
            check_pooling(bad)


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_every_layer_readout_is_the_layers_side_by_side(name, alloy, primitive, cutoff):
    torch.manual_seed(0)
    encoder = ENCODERS[name](
        hidden_dim=8,
        num_layers=2,
        cutoff=cutoff,
        num_rbf=8,
        max_z=40,
        pooling="mean+max",
        readout_layers="all",
    )
    encoder = encoder.double().eval()
    assert encoder.embedding_dim == 8 * 3 * 2  # (embedding + 2 layers) x 2 poolings
    graphs = [structure_to_graph(s, cutoff, dtype=torch.float64) for s in (alloy, primitive)]
    batch = Batch.from_data_list(graphs)
    with torch.no_grad():
        layers = encoder.layer_features(batch)
        assert len(layers) == len(encoder.blocks()) == 3
        torch.testing.assert_close(layers[-1], encoder(batch), rtol=0, atol=0)  # the last is forward's output
        # the first is the atom embedding alone: equal for equal species, whatever the environment
        torch.testing.assert_close(layers[0], encoder.embedding(batch.z))
        pooled = encoder.embed(batch).numpy()  # [2, 48]
        assert_invariant(encoder.embed, alloy, cutoff)
        assert_supercell_consistent(encoder.embed, alloy, cutoff)
    features = torch.cat(layers, dim=-1).numpy()  # [N, 24]
    index = batch.batch.numpy()
    for g in range(2):
        rows = features[index == g]
        np.testing.assert_allclose(
            pooled[g], np.concatenate([rows.mean(0), rows.max(0)]), rtol=1e-10, atol=1e-12
        )


def test_readout_layer_names_are_checked(cutoff):
    with pytest.raises(ValueError, match="readout_layers"):
        ENCODERS["painn"](hidden_dim=8, num_layers=1, cutoff=cutoff, readout_layers="first")
