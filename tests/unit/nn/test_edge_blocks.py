"""Edges processed in blocks give the same energies, forces, stress and training gradients as one block."""

from __future__ import annotations

import copy

import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.utils import scatter

from contrast.nn.base import EdgeBlocks
from contrast.nn.forces import energy_forces_stress
from contrast.testing import assert_close, assert_forces_match_finite_differences, to_graph


def with_block_size(model, block_size):
    model = copy.deepcopy(model)
    model.encoder.edge_block_size = block_size
    return model


def test_scatter_sum_matches_one_scatter():
    torch.manual_seed(0)
    edge_index = torch.randint(0, 7, (2, 40))
    x = torch.randn(7, 5, dtype=torch.float64)
    expected = scatter(x[edge_index[0]] * 2, edge_index[1], dim=0, dim_size=7, reduce="sum")
    for block_size in (None, 40, 13, 1):
        edges = EdgeBlocks(edge_index, block_size)
        assert len(edges) == (1 if block_size in (None, 40) else -(-40 // block_size))
        assert sum(part.shape[0] for part in edges.split(torch.arange(40))) == 40
        got, twice = edges.scatter_sum(lambda k, source: (x[source] * 2, x[source] * 4), 7)
        assert_close(got, expected, 1e-12, 1e-12, f"block size {block_size}")
        assert_close(twice, 2 * expected, 1e-12, 1e-12, f"block size {block_size}")


def test_blocks_give_the_same_energy_forces_and_stress(energy_model, alloy, primitive, cutoff):
    batch = Batch.from_data_list([to_graph(primitive, cutoff), to_graph(alloy, cutoff)])
    whole = energy_forces_stress(with_block_size(energy_model, None), batch, compute_stress=True)
    for block_size in (7, 100):  # many blocks, and a last block shorter than the others
        assert batch.edge_index.shape[1] > block_size
        blocked = energy_forces_stress(with_block_size(energy_model, block_size), batch, compute_stress=True)
        for key in ("energy", "forces", "stress"):
            assert_close(blocked[key], whole[key], 1e-11, 1e-12, f"{key} with blocks of {block_size}")
    embedding = with_block_size(energy_model, 7).encoder.embed(batch)
    assert_close(embedding, energy_model.encoder.embed(batch), 1e-11, 1e-12, "embeddings")


def test_blocked_forces_match_finite_differences(energy_model, alloy, cutoff):
    assert_forces_match_finite_differences(with_block_size(energy_model, 11), to_graph(alloy, cutoff))


def test_blocked_force_training_gradients(energy_model, alloy, cutoff):
    """The double-backward path (a force loss on the weights) is the same through in-place block sums."""
    data = to_graph(alloy, cutoff)

    def weight_grads(model):
        out = energy_forces_stress(model, data, compute_stress=True, training=True)
        loss = (out["forces"] ** 2).sum() + (out["stress"] ** 2).sum() + out["energy"].sum()
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.autograd.grad(loss, params, allow_unused=True)

    whole = weight_grads(with_block_size(energy_model, None))
    blocked = weight_grads(with_block_size(energy_model, 9))
    assert any(g is not None and g.abs().max() > 0 for g in whole)
    for a, b in zip(blocked, whole):
        assert (a is None) == (b is None)
        if a is not None:
            assert_close(a, b, 1e-10, 1e-12, "weight gradient")


@pytest.mark.parametrize("device_type, expected", [("cpu", 3), ("meta", 1)])
def test_blocks_only_on_the_cpu(build_encoder, device_type, expected):
    encoder = build_encoder("schnet")
    encoder.edge_block_size = 4
    data = type("Graph", (), {"edge_index": torch.zeros(2, 10, dtype=torch.long, device=device_type)})()
    assert len(encoder.edge_blocks(data)) == expected
