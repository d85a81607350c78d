"""Dropping of edges from the built neighbour list."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from contrast.augment._base import check_fraction, check_probability, fires, format_repr


def pair_index(edge_index: Tensor, cell_shift: Tensor) -> Tensor:
    """Label each directed edge with the id of its undirected pair, [E] long.

    The edge ``j -> i`` with shift ``S`` and the edge ``i -> j`` with shift ``-S`` describe the same pair, so
    they get the same id (the key is the lexicographically smaller of the two descriptions).
    """
    # numpy: these arrays are tiny and torch's per-call overhead dominates here.
    index = edge_index.detach().cpu().numpy()  # [2, E]
    shift = np.rint(cell_shift.detach().cpu().numpy()).astype(np.int64)  # [E, 3]
    forward = np.concatenate([index.T, shift], axis=1)  # [E, 5]: (j, i, S)
    backward = np.concatenate([index[::-1].T, -shift], axis=1)  # [E, 5]: (i, j, -S)
    # The first differing column decides which description is smaller.
    diff = forward - backward  # [E, 5]
    first = (diff != 0).argmax(axis=1)  # [E]
    forward_smaller = diff[np.arange(len(diff)), first] <= 0  # [E]
    key = np.where(forward_smaller[:, None], forward, backward)  # [E, 5]
    inverse = np.unique(key, axis=0, return_inverse=True)[1].reshape(-1)  # [E]
    return torch.from_numpy(inverse.astype(np.int64))


class EdgeDrop:
    """Remove a random fraction of the edges; ``cell_shift`` stays aligned with ``edge_index``.

    Args:
        p: probability of applying the transform.
        fraction: probability that each edge (or pair) is dropped.
        symmetric: drop both directions of a pair together (the graph stays undirected), or each directed
            edge independently.
    """

    def __init__(self, p: float = 1.0, fraction: float = 0.1, symmetric: bool = True):
        self.p = check_probability(p)
        self.fraction = check_fraction(fraction)
        self.symmetric = bool(symmetric)

    def __call__(self, data: Data, generator: torch.Generator) -> Data:
        """Return a copy of ``data`` with some edges removed."""
        out = data.clone()
        if not fires(self.p, generator):
            return out
        n_edges = data.edge_index.shape[1]
        if self.symmetric:
            pairs = pair_index(data.edge_index, data.cell_shift)  # [E]
            n_pairs = int(pairs.max()) + 1 if n_edges else 0
            keep = (torch.rand(n_pairs, generator=generator) >= self.fraction)[pairs]  # [E]
        else:
            keep = torch.rand(n_edges, generator=generator) >= self.fraction  # [E]
        out.edge_index = data.edge_index[:, keep]
        out.cell_shift = data.cell_shift[keep]
        return out

    def __repr__(self) -> str:
        return format_repr("EdgeDrop", p=self.p, fraction=self.fraction, symmetric=self.symmetric)
