"""Representation diagnostics for logging (no gradients needed): alignment, uniformity, collapse."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def alignment(z_a: Tensor, z_b: Tensor, alpha: float = 2.0) -> Tensor:
    """Mean ``||f(a) - f(b)||^alpha`` over positive pairs of normalised embeddings (Wang & Isola 2020).

    Args:
        z_a: [B, P] first views.
        z_b: [B, P] second views.
        alpha: exponent of the distance.

    Returns:
        Scalar; 0 when the two views coincide, at most ``2^alpha``.
    """
    a, b = F.normalize(z_a, dim=1), F.normalize(z_b, dim=1)
    return (a - b).norm(dim=1).pow(alpha).mean()


def uniformity(z: Tensor, t: float = 2.0) -> Tensor:
    """``log mean_{i<j} exp(-t ||f_i - f_j||^2)`` over normalised embeddings (Wang & Isola 2020).

    Args:
        z: [B, P] embeddings, B >= 2.
        t: scale of the Gaussian potential.

    Returns:
        Scalar; 0 for fully collapsed embeddings, lower is more uniform.
    """
    if z.shape[0] < 2:
        return z.new_zeros(())
    sq_dist = torch.pdist(F.normalize(z, dim=1)).pow(2)  # [B (B - 1) / 2]
    return sq_dist.mul(-t).exp().mean().log()


def positive_negative_similarity(z_a: Tensor, z_b: Tensor) -> tuple[Tensor, Tensor]:
    """Mean cosine similarity of positive pairs and of cross-view negative pairs.

    Args:
        z_a: [B, P] first views.
        z_b: [B, P] second views.

    Returns:
        ``(mean_pos, mean_neg)``: mean of ``cos(a_k, b_k)`` and of ``cos(a_k, b_l)`` for ``k != l`` (the
        latter 0 when B == 1).
    """
    sim = F.normalize(z_a, dim=1) @ F.normalize(z_b, dim=1).T  # [B, B]
    batch = sim.shape[0]
    positive = torch.diagonal(sim).mean()
    if batch < 2:
        return positive, sim.new_zeros(())
    negative = (sim.sum() - torch.diagonal(sim).sum()) / (batch * (batch - 1))
    return positive, negative


def embedding_std(z: Tensor) -> Tensor:
    """Collapse monitor: per-dimension std over the batch of the L2-normalised embeddings, averaged over dims.

    Healthy embeddings spread over the sphere give about ``1 / sqrt(P)``; collapsed ones give 0.

    Args:
        z: [B, P] embeddings.

    Returns:
        Scalar.
    """
    if z.shape[0] < 2:
        return z.new_zeros(())
    return F.normalize(z, dim=1).std(dim=0).mean()
