"""Masking of atom types with a mask token."""

from __future__ import annotations

import torch
from torch_geometric.data import Data

from contrast.augment._base import check_fraction, check_probability, fires, format_repr, stochastic_count


class AtomMask:
    """Set the atomic number of a random fraction of atoms to a mask index.

    Encoders embed species with ``nn.Embedding(max_z + 1, D)``, so index 0 is no element and serves as the
    mask token. Geometry and the neighbour list are untouched.

    Args:
        p: probability of applying the transform.
        fraction: expected fraction of atoms masked (``floor(fraction * N + u)``, ``u ~ U[0, 1)``).
        mask_index: the token written into ``z``.
    """

    def __init__(self, p: float = 1.0, fraction: float = 0.15, mask_index: int = 0):
        self.p = check_probability(p)
        self.fraction = check_fraction(fraction)
        self.mask_index = int(mask_index)

    def __call__(self, data: Data, generator: torch.Generator) -> Data:
        """Return a copy of ``data`` with some atoms' ``z`` replaced by ``mask_index``."""
        out = data.clone()
        if not fires(self.p, generator):
            return out
        n_mask = stochastic_count(self.fraction, data.num_nodes, generator)
        chosen = torch.randperm(data.num_nodes, generator=generator)[:n_mask]  # [M]
        out.z[chosen] = self.mask_index
        return out

    def __repr__(self) -> str:
        return format_repr("AtomMask", p=self.p, fraction=self.fraction, mask_index=self.mask_index)
