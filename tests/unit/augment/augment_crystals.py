"""Small seeded float64 crystals (at most 8 atoms) and a brute-force distance reference for the tests."""

from __future__ import annotations

import numpy as np
import torch

from contrast.graph.convert import CrystalArrays, arrays_to_graph

CUTOFF = 4.0


def make_graph(z, frac, cell, cutoff: float = CUTOFF, idx: int = 0):
    """A float64 contract graph from fractional coordinates, with a graph-level ``idx``."""
    cell = np.asarray(cell, dtype=np.float64)
    pos = np.asarray(frac, dtype=np.float64) @ cell
    graph = arrays_to_graph(CrystalArrays(np.asarray(z, dtype=np.int64), pos, cell), cutoff)
    graph.pos = graph.pos.double()
    graph.cell = graph.cell.double()
    graph.cell_shift = graph.cell_shift.double()
    graph.idx = torch.tensor([idx])
    return graph


def rock_salt():
    """Conventional NaCl cell, 8 atoms."""
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    frac = np.concatenate([fcc, fcc + [0.5, 0, 0]]) % 1.0
    return make_graph([11] * 4 + [17] * 4, frac, np.eye(3) * 5.64, idx=0)


def silicon():
    """Primitive diamond Si, 2 atoms."""
    a = 5.43
    cell = 0.5 * a * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    return make_graph([14, 14], [[0, 0, 0], [0.25, 0.25, 0.25]], cell, idx=1)


def triclinic():
    """A seeded random 5-atom triclinic crystal with mixed species."""
    rng = np.random.default_rng(7)
    cell = np.diag([4.1, 4.6, 5.0]) + rng.uniform(-0.6, 0.6, (3, 3))
    frac = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5], [0.25, 0.3, 0.7]])
    frac = (frac + rng.uniform(-0.03, 0.03, frac.shape)) % 1.0
    return make_graph([32, 8, 16, 34, 29], frac, cell, idx=2)


def periodic_distances(data, cutoff: float = CUTOFF) -> np.ndarray:
    """Sorted neighbour distances of ``data`` up to ``cutoff``, by brute force over images (float64)."""
    pos = data.pos.detach().double().numpy()
    cell = data.cell[0].detach().double().numpy()
    reach = np.ceil(
        cutoff
        / (abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1))
    )
    ranges = [np.arange(-int(r), int(r) + 1) for r in reach]
    shifts = np.stack(np.meshgrid(*ranges, indexing="ij"), -1).reshape(-1, 3) @ cell  # [S, 3]
    vec = pos[None, :, None, :] - pos[:, None, None, :] + shifts[None, None, :, :]  # [N, N, S, 3]
    dist = np.linalg.norm(vec, axis=-1).ravel()
    return np.sort(dist[(dist > 1e-8) & (dist < cutoff)])
