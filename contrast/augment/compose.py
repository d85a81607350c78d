"""Sequential composition of augmentations."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch_geometric.data import Data

Transform = Callable[[Data, torch.Generator], Data]


class Compose:
    """Apply transforms in order, all drawing from the same generator.

    Args:
        transforms: callables ``(data, generator) -> data``.
    """

    def __init__(self, transforms: Sequence[Transform] = ()):
        self.transforms = list(transforms)

    def __call__(self, data: Data, generator: torch.Generator) -> Data:
        """Return the transformed copy (the input is never modified)."""
        if not self.transforms:
            return data.clone()
        out = data  # every transform copies its input
        for transform in self.transforms:
            out = transform(out, generator)
        return out

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        return f"Compose([{', '.join(repr(t) for t in self.transforms)}])"
