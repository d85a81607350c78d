"""Removal of a random fraction of the sites (vacancies)."""

from __future__ import annotations

import torch
from torch_geometric.data import Data

from contrast.augment._base import (
    check_fraction,
    check_probability,
    fires,
    format_repr,
    stochastic_count,
    with_structure,
)


class SiteRemoval:
    """Delete a random subset of atoms, always keeping at least one.

    The number removed is ``floor(fraction * N + u)`` with ``u ~ U[0, 1)`` (so small cells are also affected
    on average), capped at ``N - 1``.

    Args:
        p: probability of applying the transform.
        fraction: expected fraction of sites removed.
    """

    def __init__(self, p: float = 1.0, fraction: float = 0.1):
        self.p = check_probability(p)
        self.fraction = check_fraction(fraction)

    def __call__(self, data: Data, generator: torch.Generator) -> Data:
        """Return a copy of ``data`` with some sites removed (edge fields dropped)."""
        if not fires(self.p, generator):
            return data.clone()
        n_atoms = data.num_nodes
        n_remove = min(stochastic_count(self.fraction, n_atoms, generator), n_atoms - 1)
        order = torch.randperm(n_atoms, generator=generator)
        keep = torch.sort(order[n_remove:]).values  # [N'] in the original order
        return with_structure(
            data, data.z.index_select(0, keep), data.pos.index_select(0, keep), data.cell.clone()
        )

    def __repr__(self) -> str:
        return format_repr("SiteRemoval", p=self.p, fraction=self.fraction)
