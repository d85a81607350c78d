"""Random shift of the origin, with every atom wrapped back into the cell."""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import Data

from contrast.augment._base import check_probability, fires, format_repr, with_structure


class OriginShift:
    """Translate all atoms by a random vector and wrap them into the unit cell.

    The periodic crystal is unchanged; only its description (origin, which image each atom is stored as)
    differs, which an encoder must not notice.

    Args:
        p: probability of applying the transform.
        max_shift: the shift is ``u @ cell``, each fractional ``u_k`` uniform in ``[0, max_shift)``.
    """

    def __init__(self, p: float = 1.0, max_shift: float = 1.0):
        if not 0 <= max_shift <= 1:
            raise ValueError(f"max_shift must lie in [0, 1] (fraction of the cell), got {max_shift}")
        self.p = check_probability(p)
        self.max_shift = float(max_shift)

    def __call__(self, data: Data, generator: torch.Generator) -> Data:
        """Return a shifted, wrapped copy of ``data`` (edge fields dropped; the pipeline rebuilds them)."""
        if not fires(self.p, generator):
            return data.clone()
        shift = self.max_shift * torch.rand(3, generator=generator, dtype=torch.float64)  # [3]
        # numpy for the 3x3 solve: torch's LAPACK call costs milliseconds for such tiny systems.
        cell = data.cell[0].detach().to(torch.float64).numpy()  # [3, 3]
        pos = data.pos.detach().to(torch.float64).numpy()  # [N, 3]
        frac = np.linalg.solve(cell.T, pos.T).T + shift.numpy()  # [N, 3]
        frac = frac - np.floor(frac)
        # Round-off can leave exactly 1.0 after the floor; fold it back to 0.
        frac = np.where(frac >= 1.0, frac - 1.0, frac)
        pos = torch.from_numpy(frac @ cell).to(data.pos.dtype)
        return with_structure(data, data.z.clone(), pos, data.cell.clone())

    def __repr__(self) -> str:
        return format_repr("OriginShift", p=self.p, max_shift=self.max_shift)
