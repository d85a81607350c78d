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
    edge_cell = cell.index_select(0, graph_index(data).index_select(0, target))  # [E, 3, 3]
    shift = torch.bmm(data.cell_shift.to(pos.dtype).unsqueeze(1), edge_cell).squeeze(1)  # [E, 3]
    return pos.index_select(0, source) - pos.index_select(0, target) + shift


def edge_lengths(vectors: Tensor) -> Tensor:
    """Euclidean lengths of edge vectors, [E, 3] -> [E]."""
    return torch.linalg.vector_norm(vectors, dim=-1)


def polynomial_envelope(distance: Tensor, cutoff: float, exponent: int = 6) -> Tensor:
    """Smooth cutoff envelope u(d), [E] -> [E].

    The polynomial of Klicpera et al. (DimeNet, 2020): u(0) = 1, and u, du/dd and d2u/dd2 all vanish at the
    cutoff, so energies and forces stay continuous when an atom crosses it. Zero beyond the cutoff.
    """
    p = exponent
    x = distance / cutoff
    u = 1.0 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)
    return torch.where(x < 1.0, u, torch.zeros_like(u))


def gaussian_rbf(distance: Tensor, num_rbf: int, cutoff: float) -> Tensor:
    """Gaussian radial basis with centres evenly spaced on [0, cutoff], [E] -> [E, num_rbf]."""
    centres = torch.linspace(0.0, cutoff, num_rbf, dtype=distance.dtype, device=distance.device)  # [K]
    width = cutoff / max(num_rbf - 1, 1)
    return torch.exp(-0.5 * ((distance.unsqueeze(-1) - centres) / width) ** 2)


def bessel_rbf(distance: Tensor, num_rbf: int, cutoff: float) -> Tensor:
    """Spherical Bessel radial basis sqrt(2/c) sin(n pi d / c) / d, n = 1..num_rbf, [E] -> [E, num_rbf]."""
    n = torch.arange(1, num_rbf + 1, dtype=distance.dtype, device=distance.device)  # [K]
    d = distance.unsqueeze(-1)  # [E, 1]
    return (2.0 / cutoff) ** 0.5 * torch.sin(n * torch.pi * d / cutoff) / d
