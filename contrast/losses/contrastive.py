"""Self-supervised losses as pure tensor functions ``(z_a [B, P], z_b [B, P]) -> scalar``.

Row ``k`` of ``z_a`` and row ``k`` of ``z_b`` are the two views of the same crystal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

MIN_BATCH = 2  # every loss here compares crystals of a batch: one crystal has no negatives and no variance


def _check_pair(z_a: Tensor, z_b: Tensor, loss: str) -> None:
    if z_a.dim() != 2 or z_a.shape != z_b.shape:
        raise ValueError(
            f"expected two [B, P] tensors of equal shape, got {tuple(z_a.shape)} and {tuple(z_b.shape)}"
        )
    if z_a.shape[0] < MIN_BATCH:
        raise ValueError(
            f"{loss} needs at least {MIN_BATCH} crystals per batch, got {z_a.shape[0]}: a batch of one has "
            "no negatives and no variance (training drops such a last batch)"
        )


def _negative_mask(batch: int, ids: Tensor | None, device: torch.device) -> Tensor:
    """[2B, 2B] bool: pairs that are never negatives (a sample and itself; copies of the same crystal)."""
    self_mask = torch.eye(2 * batch, dtype=torch.bool, device=device)
    if ids is None:
        return self_mask
    if ids.shape != (batch,) or ids.dtype == torch.bool or ids.is_floating_point() or ids.is_complex():
        raise ValueError(
            f"ids must be an integer tensor of shape [{batch}], got {ids.dtype} {tuple(ids.shape)}"
        )
    ids = ids.to(device).repeat(2)  # [2B]: both views of row k carry ids[k]
    rows = torch.arange(batch, device=device).repeat(2)  # [2B]
    same_crystal = ids[:, None] == ids[None, :]  # [2B, 2B]
    same_row = rows[:, None] == rows[None, :]  # [2B, 2B]: a sample, itself and its positive
    # Rows k != l holding the same crystal (e.g. DistributedSampler padding) are not negatives of each other.
    return self_mask | (same_crystal & ~same_row)


def info_nce(
    z_a: Tensor, z_b: Tensor, temperature: float | Tensor = 0.1, ids: Tensor | None = None
) -> Tensor:
    """Symmetric NT-Xent (SimCLR) over L2-normalised projections.

    Each of the ``2B`` samples has one positive (its other view) and ``2B - 2`` negatives (both views of every
    other crystal); the loss is the cross-entropy of picking the positive, averaged over all ``2B`` samples.

    With ``ids``, rows ``k != l`` with ``ids[k] == ids[l]`` are copies of one crystal (a distributed sampler
    pads the global batch by repeating indices): their views are removed from each other's negatives, in both
    directions. Each row keeps its own other view as its positive, and every row still counts as an anchor.
    With all ids distinct the result is exactly that without ``ids``.

    Args:
        z_a: [B, P] projections of the first views.
        z_b: [B, P] projections of the second views.
        temperature: softmax temperature (a float or a scalar tensor, e.g. a learnt one).
        ids: [B] integer identities of the crystals (e.g. dataset indices), or None if all rows differ.

    Returns:
        The scalar loss.
    """
    _check_pair(z_a, z_b, "info_nce")
    batch = z_a.shape[0]
    z = F.normalize(torch.cat([z_a, z_b], dim=0), dim=1)  # [2B, P]
    logits = z @ z.T / temperature  # [2B, 2B]
    logits = logits.masked_fill(_negative_mask(batch, ids, z.device), float("-inf"))
    positives = torch.arange(2 * batch, device=z.device).roll(batch)  # [2B]: k <-> k + B
    return F.cross_entropy(logits, positives)


def _standardise(z: Tensor, eps: float = 1e-5) -> Tensor:
    # Biased variance, as the batch normalisation of the original Barlow Twins.
    return (z - z.mean(dim=0)) / torch.sqrt(z.var(dim=0, unbiased=False) + eps)


def barlow_twins(z_a: Tensor, z_b: Tensor, lambd: float = 5e-3) -> Tensor:
    """Barlow Twins redundancy reduction (Zbontar et al. 2021).

    The cross-correlation ``C = z_a_n.T @ z_b_n / B`` of the batch-standardised projections is pushed to the
    identity: ``sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2``.

    Args:
        z_a: [B, P] projections of the first views.
        z_b: [B, P] projections of the second views.
        lambd: weight of the off-diagonal (redundancy) term.

    Returns:
        The scalar loss.
    """
    _check_pair(z_a, z_b, "barlow_twins")
    batch = z_a.shape[0]
    c = _standardise(z_a).T @ _standardise(z_b) / batch  # [P, P]
    diagonal = torch.diagonal(c)  # [P]
    on_diag = (1 - diagonal).pow(2).sum()
    off_diag = c.pow(2).sum() - diagonal.pow(2).sum()
    return on_diag + lambd * off_diag


def _off_diagonal_sq(cov: Tensor) -> Tensor:
    return cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()


def vicreg(
    z_a: Tensor,
    z_b: Tensor,
    sim_weight: float = 25.0,
    var_weight: float = 25.0,
    cov_weight: float = 1.0,
    eps: float = 1e-4,
) -> Tensor:
    """VICReg: variance-invariance-covariance regularisation (Bardes et al. 2022).

    ``sim_weight * MSE(z_a, z_b) + var_weight * hinge(1 - std) + cov_weight * off-diagonal covariance``, with
    the variance and covariance terms averaged over the two branches as in the paper's reference code.

    Args:
        z_a: [B, P] projections of the first views (B >= 2).
        z_b: [B, P] projections of the second views.
        sim_weight: weight of the invariance (mean squared error) term.
        var_weight: weight of the variance hinge term.
        cov_weight: weight of the covariance term.
        eps: added to the variance before the square root.

    Returns:
        The scalar loss.
    """
    _check_pair(z_a, z_b, "vicreg")
    batch, dim = z_a.shape
    invariance = F.mse_loss(z_a, z_b)
    variance = z_a.new_zeros(())
    covariance = z_a.new_zeros(())
    for z in (z_a, z_b):
        centred = z - z.mean(dim=0)  # [B, P]
        std = torch.sqrt(centred.pow(2).sum(dim=0) / (batch - 1) + eps)  # [P]
        variance = variance + F.relu(1 - std).mean() / 2
        cov = centred.T @ centred / (batch - 1)  # [P, P]
        covariance = covariance + _off_diagonal_sq(cov) / dim
    return sim_weight * invariance + var_weight * variance + cov_weight * covariance
