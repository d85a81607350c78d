"""The task base class: parts built from plain config dicts (allow-listed), the optimiser and its schedule,
epoch seeding and throughput logging."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import get_class
from torch import nn

from contrast.tasks.schedules import WallClockCosine, WarmupCosine, budget_timer, plateau_scheduler


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
    arguments, through the allow-listed builder (:func:`contrast.pretrained.checkpoint.build_from_config`).

    A task's configs come from the user's YAML or from a checkpoint's hyper-parameters
    (``load_from_checkpoint``, ``task.checkpoint=``); both are built the same safe way.
    """
    from contrast.pretrained.checkpoint import TASK_PREFIXES, build_from_config

    return build_from_config({**plain(config), **kwargs}, TASK_PREFIXES)


def optimizer_class(config: Mapping) -> type[torch.optim.Optimizer]:
    """The optimiser class a ``_target_`` config names (allow-listed: ``torch.optim`` and ``contrast``).

    Raises:
        CheckpointError: a target outside the allow-list or not an optimiser.
    """
    from contrast.pretrained.checkpoint import TASK_PREFIXES, CheckpointError, check_targets

    check_targets(dict(config), TASK_PREFIXES, "optimizer")
    cls = get_class(config["_target_"])
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise CheckpointError(f"optimizer _target_ {config['_target_']!r} is not a torch optimiser")
    return cls


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite: the weights are lost, so the run stops here."""


def check_finite_loss(
    loss: torch.Tensor, epoch: int, step: int, batch_idx: int, finite_everywhere: bool | None = None
) -> None:
    """Raise :class:`TrainingDiverged` when ``loss`` is NaN or infinite, naming where and what to change.

    ``finite_everywhere``: whether every process's loss was finite (under DDP), so that all processes stop
    at the same step rather than the others waiting for the one that stopped; None: this process only.
    """
    finite_here = bool(torch.isfinite(loss.detach()).all())
    if finite_here and finite_everywhere is not False:
        return
    where = (
        f"the training loss is {loss.detach().flatten()[0].item()}"
        if not finite_here
        else "the training loss of another process is not finite"
    )
    raise TrainingDiverged(
        f"{where} at epoch {epoch}, step {step} (batch {batch_idx}): training diverged and the weights are "
        "no longer usable. Lower the learning rate (task.optimizer.lr=...) or clip gradients "
        "(trainer.gradient_clip_val=10), then start again."
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
        loss = self._step(batch, "train")
        everywhere = None
        if self.trainer.world_size > 1:  # one small collective per step: every process stops together
            finite = bool(torch.isfinite(loss.detach()).all())
            everywhere = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        check_finite_loss(loss, self.current_epoch, self.global_step, batch_idx, everywhere)
        return loss

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
        factor = WarmupCosine(warmup, total, float(self.scheduler_config.get("min_lr_ratio", 0.0)))
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
