"""Exponential moving average (EMA) of weights, shared by the tasks that offer ``ema_decay``."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def warm_decay(decay: float, updates: int) -> float:
    """The decay of update number ``updates``: ``min(decay, (1 + n) / (10 + n))``, so that the average
    forgets its starting weights quickly in the first steps and settles at ``decay``."""
    return min(float(decay), (1 + updates) / (10 + updates))


@torch.no_grad()
def update_average(pairs: Iterable[tuple[nn.Module, nn.Module]], decay: float) -> None:
    """One EMA step of each ``(average, trained)`` pair: parameters move ``1 - decay`` of the way to the
    trained ones; buffers (reference energies, normalisation statistics) are copied."""
    for average, trained in pairs:
        for p_avg, p in zip(average.parameters(), trained.parameters(), strict=True):
            p_avg.lerp_(p, 1.0 - decay)
        for b_avg, b in zip(average.buffers(), trained.buffers(), strict=True):
            b_avg.copy_(b)


def ema_step(pairs: Iterable[tuple[nn.Module, nn.Module]], ema_decay: float, updates: torch.Tensor) -> None:
    """One warmed-up EMA step (:func:`warm_decay` of the count so far); ``updates``, a scalar long buffer
    saved with the checkpoint, counts the steps and is incremented in place."""
    update_average(pairs, warm_decay(ema_decay, int(updates)))
    updates += 1


def check_decay(ema_decay: float | None) -> None:
    """A clear error for a decay outside [0, 1)."""
    if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1) or null, got {ema_decay}")


def add_online_copy(task: nn.Module, online: nn.Module, averaged: Iterable[nn.Module]) -> None:
    """Give ``task`` the weights the optimiser trains, ``task.online``, beside the ``averaged`` modules
    (validated, tested and published), which stop taking gradients, and the ``ema_updates`` counter that is
    saved with the checkpoint. ``online`` is a copy of the averaged modules made before training."""
    task.online = online
    for module in averaged:
        module.requires_grad_(False)
    task.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
