"""Callbacks every run uses: the per-epoch metrics history written to ``metrics.json``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch


def _scalar(value: Any) -> float | None:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return None
        value = value.item()
    if isinstance(value, int | float) and math.isfinite(float(value)):
        return float(value)
    return None


def _epoch_metrics(trainer: pl.Trainer) -> dict[str, float]:
    """Epoch-level metrics (step-level entries end with ``_step`` and are left out)."""
    metrics = {}
    for key, value in trainer.callback_metrics.items():
        number = _scalar(value)
        if number is not None and not key.endswith("_step"):
            metrics[key.removesuffix("_epoch")] = number
    return metrics


class MetricsJSON(pl.Callback):
    """Keeps one row of metrics per epoch and writes ``metrics.json`` into the run directory.

    The file holds ``history`` (one dict per epoch), ``first_epoch``, ``last_epoch`` and ``test``, plus
    anything a task adds through :meth:`add`.
    """

    def __init__(self, output_dir: str | Path):
        self.path = Path(output_dir) / "metrics.json"
        self.history: list[dict[str, float]] = []
        self.test: dict[str, float] = {}
        self.extra: dict[str, Any] = {}

    def add(self, key: str, value: Any) -> None:
        self.extra[key] = value

    def state_dict(self) -> dict:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = list(state_dict.get("history", []))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        row = {"epoch": trainer.current_epoch, **_epoch_metrics(trainer)}
        self.history.append(row)
        self.write(trainer)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.test = {k: v for k, v in _epoch_metrics(trainer).items() if k.startswith("test")}
        self.write(trainer)

    def summary(self) -> dict[str, Any]:
        return {
            "first_epoch": self.history[0] if self.history else {},
            "last_epoch": self.history[-1] if self.history else {},
            "test": self.test,
            **self.extra,
            "history": self.history,
        }

    def write(self, trainer: pl.Trainer | None = None) -> None:
        if trainer is not None and not trainer.is_global_zero:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.summary(), indent=2))


class RestoreBest(pl.Callback):
    """Keeps a copy of the module's weights at its best validation value and restores them when fitting ends,
    so that the test split and the saved model are scored with the best epoch's weights, not the last.

    Args:
        monitor: the logged validation metric, e.g. ``val_loss``.
        mode: ``min`` or ``max``.

    ``best_epoch`` and ``best_value`` say what was restored (None before any validation). A copy lives in CPU
    memory (one state dict), and it is part of the callback's state, so a resumed run keeps its best.
    """

    def __init__(self, monitor: str = "val_loss", mode: str = "min"):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.monitor, self.mode = monitor, mode
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None

    def _better(self, value: float) -> bool:
        if self.best_value is None:
            return True
        return value < self.best_value if self.mode == "min" else value > self.best_value

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = _scalar(trainer.callback_metrics.get(self.monitor))
        if value is None or not self._better(value):
            return
        self.best_value, self.best_epoch = value, int(trainer.current_epoch)
        self.best_state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.best_state is not None:
            pl_module.load_state_dict(self.best_state)

    def state_dict(self) -> dict:
        return {"best_value": self.best_value, "best_epoch": self.best_epoch, "best_state": self.best_state}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best_value = state_dict.get("best_value")
        self.best_epoch = state_dict.get("best_epoch")
        self.best_state = state_dict.get("best_state")


class FinalCheckpoint(pl.callbacks.ModelCheckpoint):
    """``ModelCheckpoint`` whose ``last.ckpt`` always holds the weights training ended with.

    Lightning writes ``last.ckpt`` after a validation or an epoch; a run stopped by ``max_steps`` or
    ``max_time`` between two of them would keep the earlier weights (a 1,200-step run with validation every
    500 steps saved step 1,000). At the end of training this writes ``last.ckpt`` again when steps were taken
    since it was last written. It runs before any callback restores the best weights (``on_fit_end``), so
    ``last.ckpt`` stays the state to resume from.
    """

    def _generate_state_key(self, **kwargs: Any) -> str:
        # The plain ModelCheckpoint's key, so that checkpoints written before this class existed resume with
        # their checkpointing state (else last.ckpt would be written as last-v1.ckpt).
        return f"ModelCheckpoint{kwargs!r}"

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if not self.save_last or trainer.fast_dev_run or trainer.sanity_checking:
            return
        if self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
