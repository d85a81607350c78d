"""What every task shares: building parts from plain config dicts, optimiser and schedule, throughput."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import get_class
from torch import nn


def plain(config: Any) -> Any:
    """A config as plain Python containers (checkpoints must hold plain dicts, never OmegaConf objects)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(config, DictConfig | ListConfig):
            return OmegaConf.to_container(config, resolve=True)
    except ImportError:  # pragma: no cover - hydra-core depends on omegaconf
        pass
    if isinstance(config, Mapping):
        return {key: plain(value) for key, value in config.items()}
    if isinstance(config, list | tuple):
        return [plain(value) for value in config]
    return config


def build(config: Mapping, **kwargs: Any) -> Any:
    """Build a network, loss or optimiser part of a task from its ``_target_`` config and extra keyword
    arguments, through the allow-listed builder (:func:`contrast.checkpoint.build_from_config`).

    A task's configs come from the user's YAML or from a checkpoint's hyper-parameters
    (``load_from_checkpoint``, ``task.checkpoint=``); both are built the same safe way.
    """
    from contrast.checkpoint import TASK_PREFIXES, build_from_config

    return build_from_config({**plain(config), **kwargs}, TASK_PREFIXES)


def optimizer_class(config: Mapping) -> type[torch.optim.Optimizer]:
    """The optimiser class a ``_target_`` config names (allow-listed: ``torch.optim`` and ``contrast``).

    Raises:
        CheckpointError: a target outside the allow-list or not an optimiser.
    """
    from contrast.checkpoint import TASK_PREFIXES, CheckpointError, check_targets

    check_targets(dict(config), TASK_PREFIXES, "optimizer")
    cls = get_class(config["_target_"])
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise CheckpointError(f"optimizer _target_ {config['_target_']!r} is not a torch optimiser")
    return cls


def cosine_decay(progress: float, min_lr_ratio: float) -> float:
    """Learning-rate factor of a cosine from 1 at ``progress`` 0 to ``min_lr_ratio`` at 1."""
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to ``min_lr_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return cosine_decay(min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps)), min_lr_ratio)


class _WarmupCosine:
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


def pretrained_encoder(path: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """The encoder config and weights of a ``contrast`` checkpoint (any task) or of a shipped encoder's name,
    for a task to build and load.

    Raises:
        CheckpointError: naming the file, when it is not a readable ``contrast`` checkpoint.
    """
    from contrast.checkpoint import encoder_config_and_weights, read_checkpoint
    from contrast.pretrained import checkpoint_path

    path = checkpoint_path(path)  # a file, or the name of a shipped encoder
    return encoder_config_and_weights(read_checkpoint(path), source=path)


def load_encoder_weights(encoder: nn.Module, weights: dict[str, torch.Tensor], source: str) -> None:
    """Load pretrained weights into a freshly built encoder (strict), with the file named on a mismatch."""
    from contrast.checkpoint import CheckpointError

    try:
        encoder.load_state_dict(weights, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"encoder weights do not fit: {error}", source) from None


def graph_targets(batch, names: Iterable[str]) -> torch.Tensor:
    """Graph-level targets [B, T] of a batch, stacked in the order of ``names``."""
    return torch.stack([getattr(batch, name).view(-1) for name in names], dim=1)


def require_test_split(datamodule, task: str) -> None:
    """Refuse a run that reports test metrics when its test split is empty (before any training)."""
    test_set = getattr(datamodule, "test_set", None)
    if test_set is None or not len(test_set):
        raise ValueError(
            f"task={task} scores a held-out test split, but the test split is empty: give data.fractions a "
            "test part (e.g. [0.8,0.1,0.1]) or a split file with test entries"
        )


def standardise_targets(mean: torch.Tensor, std: torch.Tensor, values: torch.Tensor) -> None:
    """Fill the ``mean`` and ``std`` buffers [T] from training values [n, T] (std 1 for a single row)."""
    mean.copy_(values.mean(0))
    std.copy_(values.std(0).clamp_min(1e-8) if len(values) > 1 else torch.ones_like(values[0]))


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


class TaskModule(pl.LightningModule):
    """Base LightningModule: optimiser from config, warm-up + cosine schedule per step, throughput logging.

    Subclasses call ``save_hyperparameters()`` with plain-dict network configs and build their networks inside
    ``__init__``, so ``load_from_checkpoint(path)`` needs no YAML.
    """

    optimizer_config: dict
    scheduler_config: dict | None

    def _step(self, batch, stage: str) -> torch.Tensor:  # pragma: no cover - abstract
        """The loss of one batch in ``stage`` (``train``, ``val`` or ``test``), logging its metrics."""
        raise NotImplementedError

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "test")

    def parameter_groups(self) -> Iterable[dict] | Iterable[nn.Parameter]:
        """Parameters for the optimiser; override for per-layer learning rates."""
        return [p for p in self.parameters() if p.requires_grad]

    def configure_optimizers(self):
        config = dict(plain(self.optimizer_config))
        cls = optimizer_class(config)
        config.pop("_target_")
        # Built directly: instantiate() would turn parameter-group dicts into DictConfigs.
        optimizer = cls(self.parameter_groups(), **config)
        if not self.scheduler_config:
            return optimizer
        kind = self.scheduler_config.get("kind", "cosine")
        if kind == "plateau":
            return {
                "optimizer": optimizer,
                "lr_scheduler": plateau_scheduler(optimizer, self.scheduler_config),
            }
        if kind == "cosine_time":
            budget_timer(self.trainer)  # refuse a run without max_time before it trains
            scheduler = WallClockCosine(
                optimizer,
                float(self.scheduler_config.get("warmup_fraction", 0.0)),
                float(self.scheduler_config.get("min_lr_ratio", 0.0)),
            )
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        if kind != "cosine":
            raise ValueError(f"scheduler.kind must be 'cosine', 'cosine_time' or 'plateau', got {kind!r}")
        total = max(1, int(self.trainer.estimated_stepping_batches))
        max_epochs = max(1, self.trainer.max_epochs or 1)
        warmup = int(self.scheduler_config.get("warmup_epochs", 0) * total / max_epochs)
        factor = _WarmupCosine(warmup, total, float(self.scheduler_config.get("min_lr_ratio", 0.0)))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_train_epoch_start(self) -> None:
        # Shuffling and views are seeded by (seed, epoch). Lightning restores a checkpoint written at the end
        # of validation with the sampler's epoch one behind, so set it here from the epoch actually being run.
        epoch = self.current_epoch
        datamodule = getattr(self.trainer, "datamodule", None)
        if hasattr(datamodule, "set_epoch"):
            datamodule.set_epoch(epoch)
        # Several sources: the share of each in this epoch's draw (all ranks) next to its probability.
        for key, value in (datamodule.source_mix(epoch) if hasattr(datamodule, "source_mix") else {}).items():
            self.log(key, value, on_step=False, on_epoch=True, batch_size=1)
        loader = self.trainer.train_dataloader
        batch_sampler = getattr(loader, "batch_sampler", None)
        for sampler in (getattr(loader, "sampler", None), getattr(batch_sampler, "sampler", None)):
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)

    # Throughput in structures/s over the whole step (data wait excluded, optimiser included).
    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        self._step_started = time.perf_counter()
        for config in self.trainer.lr_scheduler_configs:
            if isinstance(config.scheduler, WallClockCosine):
                timer = budget_timer(self.trainer)
                spent = timer.time_elapsed("train")
                config.scheduler.progress = spent / max(1e-9, spent + timer.time_remaining("train"))

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        started = getattr(self, "_step_started", None)
        if started is None:
            return
        elapsed = max(time.perf_counter() - started, 1e-9)
        graphs = batch[0].num_graphs if isinstance(batch, list | tuple) else batch.num_graphs
        throughput = graphs * self.trainer.world_size / elapsed
        self.log("throughput", throughput, on_step=True, on_epoch=True, batch_size=graphs)
        optimizer = self.trainer.optimizers[0] if self.trainer.optimizers else None
        if optimizer is not None:
            self.log("lr", optimizer.param_groups[0]["lr"], on_step=True, on_epoch=False, batch_size=graphs)
