"""Random symmetric lattice strain."""

from __future__ import annotations

import torch
from torch_geometric.data import Data

from contrast.augment._base import check_probability, fires, format_repr, with_structure


class LatticeStrain:
    """Deform the lattice by ``I + eps`` with a random symmetric strain ``eps``; atoms move with the cell.

    Positions and lattice are transformed together, so fractional coordinates are unchanged.

    Args:
        p: probability of applying the transform.
        max_strain: each component of ``eps`` is drawn uniformly from ``[-max_strain, max_strain]`` before
            symmetrising.
    """

    def __init__(self, p: float = 1.0, max_strain: float = 0.03):
        if not 0 <= max_strain < 0.5:
            raise ValueError(f"max_strain must lie in [0, 0.5), got {max_strain}")
        self.p = check_probability(p)
        self.max_strain = float(max_strain)

    def __call__(self, data: Data, generator: torch.Generator) -> Data:
        """Return a strained copy of ``data`` (edge fields dropped; the pipeline rebuilds them)."""
        if not fires(self.p, generator):
            return data.clone()
        raw = (2 * torch.rand(3, 3, generator=generator, dtype=torch.float64) - 1) * self.max_strain
        # Symmetric: a pure deformation without a rotation part (rotations are their own transform).
        deformation = torch.eye(3, dtype=torch.float64) + 0.5 * (raw + raw.T)  # [3, 3]
        deformation = deformation.to(data.pos.dtype)
        pos = data.pos @ deformation  # [N, 3]
        cell = data.cell @ deformation  # [1, 3, 3]
        return with_structure(data, data.z.clone(), pos, cell)

    def __repr__(self) -> str:
        return format_repr("LatticeStrain", p=self.p, max_strain=self.max_strain)
