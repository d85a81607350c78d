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
    if index.shape[1] == 0:
        return torch.zeros(0, dtype=torch.long)
    # Each description (a, b, s0, s1, s2) as one mixed-radix integer, ordered like the tuples, so that one
    # 1-D unique replaces a row-wise unique (several times faster); row-wise where the code would overflow.
    atoms = int(index.max()) + 1
    radix = 2 * int(np.abs(shift).max()) + 1
    if atoms * atoms * radix**3 < 2**62:
        digits = shift + radix // 2  # [E, 3], non-negative
        code_shift = (digits[:, 0] * radix + digits[:, 1]) * radix + digits[:, 2]  # [E]
        code_back = ((radix - 1 - digits[:, 0]) * radix + (radix - 1 - digits[:, 1])) * radix + (
            radix - 1 - digits[:, 2]
        )  # the same for -S
        forward = (index[0] * atoms + index[1]) * radix**3 + code_shift  # (j, i, S)
        backward = (index[1] * atoms + index[0]) * radix**3 + code_back  # (i, j, -S)
        key = np.minimum(forward, backward)  # [E]
        return torch.from_numpy(np.unique(key, return_inverse=True)[1].reshape(-1).astype(np.int64))
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
            pairs = pair_index(data.edge_index, data.cell_shift).numpy()  # [E]
            n_pairs = int(pairs.max()) + 1 if n_edges else 0
            keep = (torch.rand(n_pairs, generator=generator) >= self.fraction).numpy()[pairs]  # [E]
        else:
            keep = (torch.rand(n_edges, generator=generator) >= self.fraction).numpy()  # [E]
        # numpy mask and index_select: torch's boolean-mask indexing costs far more on small CPU tensors
        kept = torch.from_numpy(np.flatnonzero(keep))
        out.edge_index = data.edge_index.index_select(1, kept)
        out.cell_shift = data.cell_shift.index_select(0, kept)
        return out

    def __repr__(self) -> str:
        return format_repr("EdgeDrop", p=self.p, fraction=self.fraction, symmetric=self.symmetric)
