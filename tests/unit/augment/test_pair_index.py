"""Undirected pair ids of directed edges, against a plain-Python reference, on both code paths."""

from __future__ import annotations

import numpy as np
import torch
from augment_crystals import triclinic

from contrast.augment.edge_drop import pair_index


def reference_pairs(edge_index: np.ndarray, shift: np.ndarray) -> np.ndarray:
    keys = []
    for (j, i), s in zip(edge_index.T.tolist(), shift.tolist()):
        forward = (j, i, *s)
        backward = (i, j, *(-v for v in s))
        keys.append(min(forward, backward))
    order = {key: k for k, key in enumerate(sorted(set(keys)))}
    return np.array([order[key] for key in keys])


def test_pair_ids_of_a_crystal_graph():
    graph = triclinic()
    ids = pair_index(graph.edge_index, graph.cell_shift).numpy()
    expected = reference_pairs(graph.edge_index.numpy(), graph.cell_shift.numpy().round().astype(int))
    np.testing.assert_array_equal(ids, expected)
    assert (np.bincount(ids) == 2).all()  # a full list: every pair appears in both directions


def test_pair_ids_with_shifts_too_large_for_one_integer_code():
    rng = np.random.default_rng(0)
    edge_index = rng.integers(0, 5, (2, 30))
    shift = rng.integers(-3, 4, (30, 3))
    shift[0] = [2_000_000, 0, -1]  # the mixed-radix code would overflow: the row-wise path runs
    edge_index = np.concatenate([edge_index, edge_index[::-1]], axis=1)
    shift = np.concatenate([shift, -shift])
    ids = pair_index(torch.from_numpy(edge_index), torch.from_numpy(shift).double()).numpy()
    np.testing.assert_array_equal(ids, reference_pairs(edge_index, shift))
    assert len(pair_index(torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, 3))) == 0
