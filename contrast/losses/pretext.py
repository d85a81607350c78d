"""Pretext losses of self-supervised pretraining (pure functions): denoising and masked-species prediction."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def denoising_loss(predicted: Tensor, noise: Tensor, sigma: float) -> Tensor:
    """Mean squared error between predicted displacements [N, 3] and the added noise [N, 3] in units of sigma.

    Dividing by ``sigma`` makes the loss of a model that predicts zero equal 3 (one per Cartesian component)
    whatever the noise scale, so weights mean the same across noise levels.
    """
    if predicted.shape != noise.shape:
        raise ValueError(f"predicted {tuple(predicted.shape)} and noise {tuple(noise.shape)} differ in shape")
    return (predicted - noise / sigma).pow(2).sum(-1).mean()


def masked_species_loss(logits: Tensor, species: Tensor) -> Tensor:
    """Cross-entropy of element logits [M, C] against the masked atoms' atomic numbers [M]."""
    if logits.shape[0] != species.shape[0]:
        raise ValueError(f"{logits.shape[0]} logit rows for {species.shape[0]} masked atoms")
    return F.cross_entropy(logits, species)
