"""Corruptions of a batch for the pretext objectives: masked species and displaced atoms.

Unlike the view transforms (per structure, in the DataLoader workers), these act on a collated batch
inside the training step and return what was hidden, so the loss can ask the model to recover it. The
neighbour list is kept: a displacement of about 0.1 Å changes edge lengths, hardly which pairs are
neighbours, apart from pairs right at the cutoff, where the envelope already takes an edge's weight to zero.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor


def mask_species(batch, fraction: float, generator: torch.Generator, mask_index: int = 0):
    """Hide the element of a random ``fraction`` of the atoms that are not masked already.

    Args:
        batch: a PyG batch (not modified).
        fraction: probability of hiding each atom; at least one atom is hidden when any can be.
        generator: source of randomness.
        mask_index: the token written into ``z``.

    Returns:
        ``(masked_batch, index [M], species [M])``: the corrupted copy, which atoms were hidden and their
        atomic numbers.
    """
    z = batch.z  # [N]
    candidates = (z != mask_index).nonzero().view(-1)  # [C]
    draw = torch.rand(candidates.shape[0], generator=generator) < fraction  # [C]
    if candidates.numel() and not draw.any():
        draw[torch.randint(candidates.numel(), (1,), generator=generator)] = True
    index = candidates[draw.to(candidates.device)]  # [M]
    out = copy.copy(batch)
    out.z = z.clone()
    out.z[index] = mask_index
    return out, index, z.index_select(0, index)


def displace_atoms(batch, sigma: float, generator: torch.Generator) -> tuple[object, Tensor]:
    """Add isotropic Gaussian noise of standard deviation ``sigma`` (Å) to every position.

    Returns:
        ``(displaced_batch, noise [N, 3])``; the batch is not modified.
    """
    noise = torch.randn(batch.pos.shape, generator=generator, dtype=torch.float64)  # [N, 3]
    noise = (sigma * noise).to(device=batch.pos.device, dtype=batch.pos.dtype)
    out = copy.copy(batch)
    out.pos = batch.pos + noise
    return out, noise
