"""``nn.Module`` wrappers of the losses for Hydra: gather across ranks, then call the pure function."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from contrast.losses.contrastive import barlow_twins, info_nce, vicreg
from contrast.losses.distributed import gather_rows, gather_with_grad


class _BoundedExp(torch.autograd.Function):
    """``exp(x)`` clamped to ``[low, high]``; at a bound only a gradient that points back inside passes.

    A plain clamp (the CLIP convention) gives zero gradient once ``exp(x)`` reaches a bound, so a parameter
    pushed there (or carried past it by optimiser momentum) stays pinned for the rest of the run. Here the
    value is clamped exactly as a plain clamp does, and inside the bounds the gradient is that of ``exp``;
    at or beyond a bound, the gradient is kept only when a descent step (``x -= lr * grad``) moves the
    temperature back towards the interior, and is zero when it would push further out.
    """

    @staticmethod
    def forward(ctx, x: Tensor, low: float, high: float) -> Tensor:
        value = x.exp().clamp(low, high)
        ctx.save_for_backward(value)
        ctx.low, ctx.high = low, high
        return value

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        (value,) = ctx.saved_tensors
        outward = ((value <= ctx.low) & (grad > 0)) | ((value >= ctx.high) & (grad < 0))
        return (grad * value).masked_fill(outward, 0.0), None, None


class InfoNCELoss(nn.Module):
    """Symmetric InfoNCE with negatives from the global batch across all ranks.

    A learnt temperature is kept in ``[min_temperature, max_temperature]``: the value used in the loss is
    ``clamp(exp(log_temperature), min, max)``. At a bound the gradient that would push it further out is
    dropped, while one pointing back inside still passes (see :class:`_BoundedExp`), so the temperature can
    leave the bound again. The parameter itself is not clamped and should not be weight-decayed (decay pulls
    ``log_temperature`` to 0, i.e. T = 1); :class:`contrast.tasks.contrastive.ContrastiveTask` puts the loss's
    parameters in a group without weight decay. A fixed temperature is used as given.

    Args:
        temperature: the (initial) softmax temperature.
        learnable_temperature: learn ``log(temperature)`` as a parameter (CLIP style).
        min_temperature: lower bound of a learnt temperature (CLIP's logit scale of at most 100).
        max_temperature: upper bound of a learnt temperature.
    """

    uses_ids = True  # forward takes the crystals' ids, to keep copies of one crystal out of its negatives

    def __init__(
        self,
        temperature: float = 0.1,
        learnable_temperature: bool = False,
        min_temperature: float = 0.01,
        max_temperature: float = 1.0,
    ):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if not 0 < min_temperature <= max_temperature:
            raise ValueError(
                f"need 0 < min_temperature <= max_temperature, got {min_temperature} and {max_temperature}"
            )
        self.learnable_temperature = bool(learnable_temperature)
        self.initial_temperature = float(temperature)
        self.min_temperature = float(min_temperature)
        self.max_temperature = float(max_temperature)
        if self.learnable_temperature:
            if not self.min_temperature <= temperature <= self.max_temperature:
                raise ValueError(
                    f"initial temperature {temperature} is outside "
                    f"[{self.min_temperature}, {self.max_temperature}]"
                )
            self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))
        # Follows the module across devices so that the reported temperature lives where the loss does.
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    @property
    def temperature(self) -> Tensor:
        """The temperature used in the loss, a scalar tensor (a learnt one clamped to its bounds)."""
        if self.learnable_temperature:
            return _BoundedExp.apply(self.log_temperature, self.min_temperature, self.max_temperature)
        return torch.tensor(self.initial_temperature, device=self._anchor.device)

    def forward(self, z_a: Tensor, z_b: Tensor, ids: Tensor | None = None) -> Tensor:
        """Loss of the global batch from this rank's projections ``z_a``, ``z_b`` [B_rank, P].

        ``ids`` [B_rank] (e.g. the dataset indices of the crystals) are gathered alongside the projections;
        rows of the global batch with equal ids are not each other's negatives. Every rank must pass ids, or
        none.
        """
        z_a, z_b = gather_with_grad(z_a), gather_with_grad(z_b)  # [B, P] each
        if ids is not None:
            ids = gather_rows(ids.reshape(-1).to(z_a.device))  # [B]
        # A fixed temperature stays a Python float: exact in any dtype.
        learnt = self.learnable_temperature
        temperature = self.temperature.to(z_a.dtype) if learnt else self.initial_temperature
        return info_nce(z_a, z_b, temperature, ids=ids)

    def extra_repr(self) -> str:
        learnt = self.learnable_temperature
        text = f"temperature={self.temperature.item():.4g}, learnable_temperature={learnt}"
        if learnt:
            text += f", bounds=[{self.min_temperature:.4g}, {self.max_temperature:.4g}]"
        return text


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
