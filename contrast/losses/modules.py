"""``nn.Module`` wrappers of the losses for Hydra: gather across ranks, then call the pure function."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from contrast.losses.contrastive import barlow_twins, info_nce, vicreg
from contrast.losses.distributed import gather_with_grad


class InfoNCELoss(nn.Module):
    """Symmetric InfoNCE with negatives from the global batch across all ranks.

    Args:
        temperature: the (initial) softmax temperature.
        learnable_temperature: learn ``log(temperature)`` as a parameter (CLIP style).
    """

    def __init__(self, temperature: float = 0.1, learnable_temperature: bool = False):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.learnable_temperature = bool(learnable_temperature)
        self.initial_temperature = float(temperature)
        if self.learnable_temperature:
            self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))
        # Follows the module across devices so that the reported temperature lives where the loss does.
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    @property
    def temperature(self) -> Tensor:
        """The current temperature, a scalar tensor."""
        if self.learnable_temperature:
            return self.log_temperature.exp()
        return torch.tensor(self.initial_temperature, device=self._anchor.device)

    def forward(self, z_a: Tensor, z_b: Tensor) -> Tensor:
        """Loss of the global batch from this rank's projections ``z_a``, ``z_b`` [B_rank, P]."""
        z_a, z_b = gather_with_grad(z_a), gather_with_grad(z_b)  # [B, P] each
        # A fixed temperature stays a Python float: exact in any dtype.
        learnt = self.learnable_temperature
        return info_nce(z_a, z_b, self.temperature.to(z_a.dtype) if learnt else self.initial_temperature)

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature.item():.4g}, learnable_temperature={self.learnable_temperature}"
        )


class BarlowTwinsLoss(nn.Module):
    """Barlow Twins on the global batch (statistics over all ranks).

    Args:
        lambd: weight of the off-diagonal term.
    """

    def __init__(self, lambd: float = 5e-3):
        super().__init__()
        self.lambd = float(lambd)

    def forward(self, z_a: Tensor, z_b: Tensor) -> Tensor:
        """Loss of the global batch from this rank's projections ``z_a``, ``z_b`` [B_rank, P]."""
        return barlow_twins(gather_with_grad(z_a), gather_with_grad(z_b), self.lambd)

    def extra_repr(self) -> str:
        return f"lambd={self.lambd}"


class VICRegLoss(nn.Module):
    """VICReg on the global batch (statistics over all ranks).

    Args:
        sim_weight: weight of the invariance term.
        var_weight: weight of the variance term.
        cov_weight: weight of the covariance term.
    """

    def __init__(self, sim_weight: float = 25.0, var_weight: float = 25.0, cov_weight: float = 1.0):
        super().__init__()
        self.sim_weight = float(sim_weight)
        self.var_weight = float(var_weight)
        self.cov_weight = float(cov_weight)

    def forward(self, z_a: Tensor, z_b: Tensor) -> Tensor:
        """Loss of the global batch from this rank's projections ``z_a``, ``z_b`` [B_rank, P]."""
        z_a, z_b = gather_with_grad(z_a), gather_with_grad(z_b)  # [B, P] each
        return vicreg(z_a, z_b, self.sim_weight, self.var_weight, self.cov_weight)

    def extra_repr(self) -> str:
        return f"sim_weight={self.sim_weight}, var_weight={self.var_weight}, cov_weight={self.cov_weight}"
