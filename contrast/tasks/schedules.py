"""Learning-rate schedules of the tasks: warm-up and cosine per step, cosine over a wall-clock budget, halving
on a plateau, and layer-wise decay over the encoder's depth."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pytorch_lightning as pl
import torch
from torch import nn


def cosine_decay(progress: float, min_lr_ratio: float) -> float:
    """Learning-rate factor of a cosine from 1 at ``progress`` 0 to ``min_lr_ratio`` at 1."""
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to ``min_lr_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return cosine_decay(min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps)), min_lr_ratio)


class WarmupCosine:
    """Picklable LambdaLR factor (a lambda would not survive checkpointing)."""

    def __init__(self, warmup_steps: int, total_steps: int, min_lr_ratio: float):
        self.warmup_steps, self.total_steps, self.min_lr_ratio = warmup_steps, total_steps, min_lr_ratio

    def __call__(self, step: int) -> float:
        return warmup_cosine(step, self.warmup_steps, self.total_steps, self.min_lr_ratio)


def layer_decay_groups(encoder: nn.Module, lr: float, decay: float) -> list[dict]:
    """Optimiser groups of the encoder with layer-wise learning-rate decay in its depth order.

    The last block of :meth:`CrystalEncoder.blocks` gets ``lr * decay``, the one below ``lr * decay**2`` and
    so on down to the atom embedding; the modules of one layer share one rate. Frozen parameters are left out.
    """
    groups = []
    blocks = encoder.blocks()
    covered = [id(p) for modules in blocks for module in modules for p in module.parameters()]
    if sorted(covered) != sorted(id(p) for p in encoder.parameters()):
        raise ValueError(f"{type(encoder).__name__}.blocks() must hold every parameter exactly once")
    for depth, modules in enumerate(reversed(blocks), start=1):
        params = [p for module in modules for p in module.parameters() if p.requires_grad]
        if params:
            groups.append({"params": params, "lr": lr * decay**depth})
    return groups


def plateau_scheduler(optimizer: torch.optim.Optimizer, config: Mapping) -> dict:
    """Lightning's scheduler entry for a learning rate multiplied by ``factor`` whenever ``monitor`` (default
    ``val_loss``) has not improved for ``patience`` validations, down to ``min_lr_ratio`` times the start.

    For runs ended by a wall-clock budget (``trainer.max_time``), where a cosine schedule's length is unknown.
    """
    minimum = [float(config.get("min_lr_ratio", 0.0)) * group["lr"] for group in optimizer.param_groups]
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="min",
        factor=float(config.get("factor", 0.5)),
        patience=int(config.get("patience", 10)),
        min_lr=minimum,
    )
    return {"scheduler": scheduler, "monitor": config.get("monitor", "val_loss"), "interval": "epoch"}


def wall_clock_cosine(progress: float, warmup_fraction: float, min_lr_ratio: float) -> float:
    """Learning-rate factor at ``progress`` (the fraction of a wall-clock budget spent, 0 to 1): a linear
    warm-up from ``min_lr_ratio`` over the first ``warmup_fraction``, then a cosine decay to ``min_lr_ratio``
    at the end of the budget."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < warmup_fraction:
        return min_lr_ratio + (1.0 - min_lr_ratio) * progress / warmup_fraction
    return cosine_decay((progress - warmup_fraction) / (1.0 - warmup_fraction), min_lr_ratio)


class WallClockCosine(torch.optim.lr_scheduler.LRScheduler):
    """Warm-up + cosine decay over a wall-clock budget (``trainer.max_time``) instead of a number of steps.

    The task sets ``progress`` (the fraction of the budget spent, from Lightning's ``Timer``, which a resumed
    run restores) before each step; the learning rate reaches its minimum when the budget ends, however many
    steps the machine managed. Stepped per optimiser step.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_fraction: float, min_lr_ratio: float):
        if not 0.0 <= warmup_fraction < 1.0:
            raise ValueError(f"scheduler.warmup_fraction must be in [0, 1), got {warmup_fraction}")
        self.progress = 0.0
        self.warmup_fraction, self.min_lr_ratio = warmup_fraction, min_lr_ratio
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        factor = wall_clock_cosine(self.progress, self.warmup_fraction, self.min_lr_ratio)
        return [base_lr * factor for base_lr in self.base_lrs]


def budget_timer(trainer: pl.Trainer) -> pl.callbacks.Timer:
    """The ``Timer`` that ends a run at ``trainer.max_time``.

    Raises:
        ValueError: when the run has no wall-clock budget.
    """
    for callback in trainer.callbacks:
        if isinstance(callback, pl.callbacks.Timer) and callback.time_remaining() is not None:
            return callback
    raise ValueError(
        "scheduler.kind=cosine_time decays the learning rate over the wall-clock budget, but the run has "
        "none: set trainer.max_time (e.g. trainer.max_time=00:00:30:00)"
    )
