"""Random rigid rotation of positions and lattice together."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch_geometric.data import Data

from contrast.augment._base import check_probability, fires, format_repr, with_structure


def random_rotation(generator: torch.Generator, max_angle: float = 180.0) -> Tensor:
    """A proper rotation matrix [3, 3] (float64, det +1).

    ``max_angle=180`` samples uniformly (Haar) over SO(3) from a random unit quaternion; smaller angles use a
    uniformly random axis and an angle uniform in ``[0, max_angle]`` degrees.
    """
    if max_angle >= 180.0:
        q = torch.randn(4, generator=generator, dtype=torch.float64)
        w, x, y, z = (q / q.norm()).tolist()
        return torch.tensor(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
            ],
            dtype=torch.float64,
        )
    axis = torch.randn(3, generator=generator, dtype=torch.float64)
    ax, ay, az = (axis / axis.norm()).tolist()
    angle = math.radians(max_angle) * float(torch.rand((), generator=generator, dtype=torch.float64))
    skew = torch.tensor([[0.0, -az, ay], [az, 0.0, -ax], [-ay, ax, 0.0]], dtype=torch.float64)
    # Rodrigues' formula.
    return torch.eye(3, dtype=torch.float64) + math.sin(angle) * skew + (1 - math.cos(angle)) * skew @ skew


class RandomRotation:
    """Rotate the crystal rigidly: ``pos @ R.T`` and ``cell @ R.T`` (fractional coordinates unchanged).

    Args:
        p: probability of applying the transform.
        max_angle: largest rotation angle in degrees; 180 gives uniformly random orientations.
    """

    def __init__(self, p: float = 1.0, max_angle: float = 180.0):
        if not 0 <= max_angle <= 180:
            raise ValueError(f"max_angle must lie in [0, 180] degrees, got {max_angle}")
        self.p = check_probability(p)
        self.max_angle = float(max_angle)

    def __call__(self, data: Data, generator: torch.Generator) -> Data:
        """Return a rotated copy of ``data`` (edge fields dropped; the pipeline rebuilds them)."""
        if not fires(self.p, generator):
            return data.clone()
        rotation = random_rotation(generator, self.max_angle).to(data.pos.dtype)  # [3, 3]
        pos = data.pos @ rotation.T  # [N, 3]
        cell = data.cell @ rotation.T  # [1, 3, 3]
        return with_structure(data, data.z.clone(), pos, cell)

    def __repr__(self) -> str:
        return format_repr("RandomRotation", p=self.p, max_angle=self.max_angle)
