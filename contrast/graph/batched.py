"""Periodic neighbour lists of a whole collated batch in plain torch, on the batch's device.

:class:`~contrast.graph.neighbours.NeighbourSearch` (vesin, CPU) searches one structure at a time. Training
views re-search every structure of every batch, and on a GPU that per-structure CPU work starves the model;
:func:`batch_neighbour_list` searches all structures of a batch at once with tensor operations only, so it
runs where the batch lives.

Method: every ordered atom pair (i, j) of one structure is paired with every lattice translation in a box of
``(2 n_1 + 1) (2 n_2 + 1) (2 n_3 + 1)`` images around the pair's nearest image, and the candidates closer
than the cutoff are kept. The nearest image of a pair is ``-round(f_j - f_i)`` in fractional coordinates, so
the pair's fractional difference from it lies in ``[-1/2, 1/2]`` along each lattice vector. A neighbour within
the cutoff lies within the cutoff of each family of lattice planes (spacing ``d_k = V / |a_l x a_m|``);
``n_k = floor(cutoff / d_k + 1/2)`` images on each side therefore reach every neighbour (for positions wrapped
into the cell, without the nearest-image offset, ``ceil(cutoff / d_k)`` would be needed; the offset makes the
box smaller and lets positions lie anywhere). Triclinic cells, cutoffs longer than the cell and an atom's own
images are handled alike; only an atom's own zero-shift image is left out.

Candidates are enumerated lazily as one integer range, split into chunks of at most ``max_pairs``: memory is
``O(max_pairs)`` per chunk (a few hundred bytes per candidate) plus ``O(N + B)``, and the work is
``O(sum_b n_b^2 * images_b)``. This brute force suits the small cells of crystal datasets (tens of atoms); it
is quadratic in atoms per structure, so large supercells belong to the cell-list search of vesin.

Distances are compared in the dtype of ``pos``: in float32 a pair within about 1e-6 Å of the cutoff may be
decided differently from vesin's float64 search; the encoders' envelope gives such an edge no weight.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["DEFAULT_MAX_PAIRS", "batch_neighbour_list", "image_counts", "plane_distances"]

DEFAULT_MAX_PAIRS = 1 << 21  # candidates per chunk: under 1 GB of temporaries

# Slack on cutoff / d_k: round-off in the nearest-image offset must never drop an image with a neighbour.
_IMAGE_SLACK = 1e-6


def plane_distances(cell: Tensor) -> Tensor:
    """Spacing of the lattice planes spanned by each pair of lattice vectors, [B, 3, 3] -> [B, 3].

    ``d_k = V / |a_l x a_m|`` with ``(k, l, m)`` cyclic: the distance between neighbouring planes parallel to
    ``a_l`` and ``a_m``.
    """
    cell = cell.to(torch.float64)
    cross = torch.linalg.cross(cell[:, [1, 2, 0]], cell[:, [2, 0, 1]], dim=-1)  # [B, 3, 3]
    volume = (cell * cross).sum(-1)[:, 0].abs()  # [B]: a_0 . (a_1 x a_2)
    return volume[:, None] / torch.linalg.vector_norm(cross, dim=-1)


def image_counts(cell: Tensor, cutoff: float) -> Tensor:
    """Images ``n_k`` searched on each side of a pair's nearest image along lattice vector k, [B, 3] long."""
    return torch.floor(cutoff / plane_distances(cell) + 0.5 + _IMAGE_SLACK).long()


@torch.no_grad()
def batch_neighbour_list(
    pos: Tensor,
    cell: Tensor,
    batch: Tensor,
    cutoff: float,
    max_pairs: int = DEFAULT_MAX_PAIRS,
) -> tuple[Tensor, Tensor, Tensor]:
    """Full periodic neighbour lists of every structure of a batch (the graph contract's convention).

    Args:
        pos: Cartesian positions [N, 3], Å (any float dtype, any device; need not be wrapped into the cell).
        cell: lattice vectors as rows [B, 3, 3].
        batch: structure of each atom [N] long, sorted (PyG's ``batch``).
        cutoff: radius in Å; pairs closer than it are kept.
        max_pairs: candidates (atom pair x image) handled at once; bounds the memory.

    Returns:
        ``(edge_index, cell_shift, distance)``: [2, E] long global indices with sources j in row 0 and targets
        i in row 1, integer image shifts [E, 3] in the dtype of ``pos``, with
        ``pos[j] - pos[i] + cell_shift @ cell[b]`` the vector from i to its neighbour, and distances [E]
        (detached). Edges are ordered by structure, then target, then source.
    """
    if max_pairs < 1:
        raise ValueError(f"max_pairs must be positive, got {max_pairs}")
    device, dtype = pos.device, pos.dtype
    pos, cell = pos.detach(), cell.detach()
    num_graphs = cell.shape[0]
    atoms = torch.bincount(batch, minlength=num_graphs)  # [B]
    ptr = torch.cumsum(atoms, 0) - atoms  # [B]: first atom of each structure
    reach = image_counts(cell, cutoff)  # [B, 3]
    width = 2 * reach + 1  # [B, 3]
    images = width.prod(1)  # [B]
    candidates = atoms * atoms * images  # [B]
    candidate_end = torch.cumsum(candidates, 0)  # [B]
    total = int(candidate_end[-1]) if num_graphs else 0
    # Fractional coordinates in float64: the nearest-image offset must not suffer float32 round-off.
    frac = torch.linalg.solve(
        cell.to(torch.float64).index_select(0, batch).transpose(1, 2), pos.to(torch.float64).unsqueeze(-1)
    ).squeeze(-1)  # [N, 3]
    cell_w = cell.to(dtype)
    tables = (atoms, ptr, reach, width, images, candidate_end - candidates, candidate_end)
    edges, shifts, distances = [], [], []
    for start in range(0, total, max_pairs):
        chunk = torch.arange(start, min(start + max_pairs, total), device=device)  # [C]
        j, i, shift, dist = _search_chunk(chunk, pos, frac, cell_w, cutoff, tables)
        edges.append(torch.stack((j, i)))
        shifts.append(shift)
        distances.append(dist)
    if not edges:
        empty = torch.empty(0, dtype=dtype, device=device)
        return torch.empty(2, 0, dtype=torch.long, device=device), empty.view(0, 3), empty
    return torch.cat(edges, 1), torch.cat(shifts).to(dtype), torch.cat(distances)


def _search_chunk(
    chunk: Tensor, pos: Tensor, frac: Tensor, cell: Tensor, cutoff: float, tables: tuple[Tensor, ...]
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Neighbours among the candidates with global ids ``chunk`` [C]: sources, targets, shifts, distances."""
    atoms, ptr, reach, width, images, candidate_start, candidate_end = tables
    graph = torch.searchsorted(candidate_end, chunk, right=True)  # [C]: each candidate's structure
    local = chunk - candidate_start[graph]  # [C]: id within the structure, pair-major
    per_pair = images[graph]  # [C]
    pair, image = local // per_pair, local % per_pair  # [C], [C]
    n = atoms[graph]  # [C]
    i = ptr[graph] + pair // n  # [C] targets
    j = ptr[graph] + pair % n  # [C] sources
    w = width[graph]  # [C, 3]
    offset = (
        torch.stack((image // (w[:, 1] * w[:, 2]), (image // w[:, 2]) % w[:, 1], image % w[:, 2]), dim=1)
        - reach[graph]
    )  # [C, 3] in [-n_k, n_k]
    nearest = -torch.round(frac[j] - frac[i]).long()  # [C, 3]: the pair's nearest image
    shift = nearest + offset  # [C, 3]
    translation = torch.bmm(shift.to(cell.dtype).unsqueeze(1), cell[graph]).squeeze(1)  # [C, 3]
    vec = pos[j] - pos[i] + translation  # [C, 3]
    dist_sq = (vec * vec).sum(1)  # [C]
    keep = (dist_sq < cutoff * cutoff) & ((i != j) | (shift != 0).any(1))  # [C]
    keep = keep.nonzero().squeeze(1)  # [E_c]
    return j[keep], i[keep], shift[keep], dist_sq[keep].sqrt()
