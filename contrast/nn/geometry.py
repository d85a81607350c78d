"""Edge geometry computed in ``forward`` from ``pos``, ``cell`` and ``cell_shift`` (never stored)."""

from __future__ import annotations

import torch
from torch import Tensor


def graph_index(data) -> Tensor:
    """The graph each atom belongs to, [N] long (zeros for a single un-batched graph)."""
    batch = getattr(data, "batch", None)
    if batch is None:
        return torch.zeros(data.pos.shape[0], dtype=torch.long, device=data.pos.device)
    return batch


def edge_vectors(data, pos: Tensor | None = None, cell: Tensor | None = None) -> Tensor:
    """Vectors from each target atom i to its source neighbour j, [E, 3].

    ``vec_ij = pos[j] - pos[i] + cell_shift @ cell[graph of i]``, with ``edge_index = [j, i]``.
    ``pos`` and ``cell`` default to the data's own; pass strained or grad-tracking copies to differentiate.
    """
    pos = data.pos if pos is None else pos  # [N, 3]
    cell = data.cell if cell is None else cell  # [B, 3, 3]
    source, target = data.edge_index  # [E], [E]
    edge_cell = cell[graph_index(data)[target]]  # [E, 3, 3]
    shift = torch.bmm(data.cell_shift.to(pos.dtype).unsqueeze(1), edge_cell).squeeze(1)  # [E, 3]
    return pos[source] - pos[target] + shift
