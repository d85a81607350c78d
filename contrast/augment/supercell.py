"""Random supercell within an atom budget."""

from __future__ import annotations

import itertools

import torch
from torch_geometric.data import Data

from contrast.augment._base import check_probability, fires, format_repr, with_structure


class RandomSupercell:
    """Repeat the cell ``(n1, n2, n3)`` times along its lattice vectors, chosen at random within a budget.

    The repeats are drawn uniformly among all ``n1, n2, n3 <= max_repeat`` with ``n1 * n2 * n3 * N <=
    max_atoms``; a structure already at the budget is returned as a copy.

    Args:
        p: probability of applying the transform.
        max_atoms: the largest number of atoms a view may have.
        max_repeat: the largest repeat along any one axis.
    """

    def __init__(self, p: float = 1.0, max_atoms: int = 64, max_repeat: int = 3):
        if max_atoms < 1 or max_repeat < 1:
            raise ValueError(f"max_atoms and max_repeat must be >= 1, got {max_atoms} and {max_repeat}")
        self.p = check_probability(p)
        self.max_atoms = int(max_atoms)
        self.max_repeat = int(max_repeat)

    def allowed_repeats(self, num_atoms: int) -> list[tuple[int, int, int]]:
        """Every repeat triple within the budget, in a fixed order."""
        span = range(1, self.max_repeat + 1)
        triples = itertools.product(span, span, span)
        return [r for r in triples if r[0] * r[1] * r[2] * num_atoms <= self.max_atoms]

    def __call__(self, data: Data, generator: torch.Generator) -> Data:
        """Return a supercell copy of ``data`` (edge fields dropped; the pipeline rebuilds them)."""
        if not fires(self.p, generator):
            return data.clone()
        choices = self.allowed_repeats(data.num_nodes)
        if len(choices) <= 1:
            return data.clone()
        repeats = choices[int(torch.randint(len(choices), (), generator=generator))]
        ranges = [torch.arange(n, dtype=data.pos.dtype) for n in repeats]
        images = torch.cartesian_prod(*ranges).reshape(-1, 3)  # [R, 3]
        offsets = images @ data.cell[0]  # [R, 3]
        pos = (offsets[:, None, :] + data.pos[None, :, :]).reshape(-1, 3)  # [R * N, 3]
        z = data.z.repeat(len(images))  # [R * N], image-major like pos
        scale = torch.tensor(repeats, dtype=data.pos.dtype)
        cell = data.cell * scale[None, :, None]  # [1, 3, 3]: row k is lattice vector k times n_k
        return with_structure(data, z, pos, cell)

    def __repr__(self) -> str:
        return format_repr("RandomSupercell", p=self.p, max_atoms=self.max_atoms, max_repeat=self.max_repeat)
