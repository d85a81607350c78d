"""The direct vesin search against vesin's public API and the brute-force reference, and the Data builder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Data
from vesin import NeighborList

from contrast.graph import neighbours
from contrast.graph.convert import contract_data
from contrast.graph.neighbours import NeighbourSearch

from .test_convert import CASES, assert_same_pairs, brute_force_pairs


def as_pairs(edge_index: np.ndarray, shift: np.ndarray, distance: np.ndarray) -> dict[tuple, float]:
    j, i = edge_index
    return {(int(a), int(b), *s.tolist()): float(d) for a, b, s, d in zip(i, j, shift, distance)}


def public_api_pairs(pos, cell, cutoff) -> dict[tuple, float]:
    i, j, shift, distance = NeighborList(cutoff=cutoff, full_list=True).compute(
        points=pos, box=cell, periodic=True, quantities="ijSd"
    )
    return {(int(a), int(b), *s.tolist()): float(d) for a, b, s, d in zip(i, j, shift, distance)}


@pytest.mark.parametrize("use_c_api", [True, False])
def test_search_matches_public_api_and_brute_force(use_c_api):
    if use_c_api and not neighbours._HAS_C_API:
        pytest.skip("this vesin does not expose its C bindings")
    for _, pos, cell, cutoff in CASES[:80]:
        search = NeighbourSearch(cutoff, use_c_api=use_c_api)
        edge_index, shift, distance = search(pos, cell)
        assert edge_index.dtype == np.int64 and edge_index.shape == (2, len(distance))
        assert edge_index.flags.c_contiguous
        got = as_pairs(edge_index, shift, distance)
        assert got == public_api_pairs(pos, cell, cutoff)
        assert_same_pairs(got, brute_force_pairs(pos, cell, cutoff), cutoff)


def test_results_survive_the_next_search():
    """Outputs are copies: vesin reuses its buffers, so a later search must not change earlier results."""
    search = NeighbourSearch(3.0)
    (_, pos_a, cell_a, _), (_, pos_b, cell_b, _) = CASES[1], CASES[2]
    first = search(pos_a, cell_a)
    kept = [array.copy() for array in first]
    search(pos_b, cell_b)
    for array, copy in zip(first, kept):
        np.testing.assert_array_equal(array, copy)


def test_no_pairs_and_threaded_large_cells():
    search = NeighbourSearch(1.0)
    edge_index, shift, distance = search(np.zeros((1, 3)), np.eye(3) * 5.0)
    assert edge_index.shape == (2, 0) and shift.shape == (0, 3) and distance.shape == (0,)
    # a supercell above the one-thread threshold gives the same list as vesin's public API
    rng = np.random.default_rng(0)
    side = 12
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3).astype(float)
    pos = grid * 2.0 + rng.normal(0, 0.05, grid.shape)
    cell = np.eye(3) * 2.0 * side
    assert len(pos) >= neighbours.THREADED_FROM_ATOMS
    search = NeighbourSearch(3.0)
    assert as_pairs(*search(pos, cell)) == public_api_pairs(pos, cell, 3.0)


def test_contract_data_equals_the_plain_constructor():
    fields = dict(
        z=torch.tensor([8, 22]),
        pos=torch.rand(2, 3),
        cell=torch.eye(3)[None],
        edge_index=torch.tensor([[0, 1], [1, 0]]),
        cell_shift=torch.zeros(2, 3),
    )
    fast, plain = contract_data(**fields), Data(**fields)
    assert set(fast.keys()) == set(plain.keys()) and fast.num_nodes == plain.num_nodes == 2
    for key in fields:
        assert fast[key] is plain[key]
    fast.idx = torch.tensor([3])  # behaves as a normal Data afterwards
    assert "idx" in fast and fast.num_edges == 2
