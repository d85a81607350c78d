"""Gaussian noise on atomic positions."""

from __future__ import annotations

import torch
from torch_geometric.data import Data

from contrast.augment._base import check_probability, fires, format_repr, with_structure


class PositionNoise:
    """Displace every atom by isotropic Gaussian noise.

    Args:
        p: probability of applying the transform.
        sigma: standard deviation of each Cartesian displacement, Å.
    """

    def __init__(self, p: float = 1.0, sigma: float = 0.05):
        if sigma < 0:
            raise ValueError(f"sigma must be non-negative, got {sigma}")
        self.p = check_probability(p)
        self.sigma = float(sigma)

    def __call__(self, data: Data, generator: torch.Generator) -> Data:
        """Return a noisy copy of ``data`` (edge fields dropped; the pipeline rebuilds them)."""
        if not fires(self.p, generator):
            return data.clone()
        noise = torch.randn(data.pos.shape, generator=generator, dtype=torch.float64)  # [N, 3]
        pos = data.pos + (self.sigma * noise).to(data.pos.dtype)
        return with_structure(data, data.z.clone(), pos, data.cell.clone())

    def __repr__(self) -> str:
        return format_repr("PositionNoise", p=self.p, sigma=self.sigma)
