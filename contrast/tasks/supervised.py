"""What the supervised heads (probe, fine-tuning) share: the kind of target, graph-level targets and their
standardisation, the regression or classification loss with its metrics, and the refusal of a run that would
report on an empty test split."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from contrast.tasks.base import TaskModule

KINDS = ("regression", "classification")


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


def check_kind(kind: str, targets: Sequence[str], task: str) -> None:
    """A clear error for an unknown kind, or a classification over more than one target."""
    if kind not in KINDS:
        raise ValueError(f"{task} kind must be 'regression' or 'classification', not {kind!r}")
    if kind == "classification" and len(targets) != 1:
        raise ValueError(f"a classification {task} takes exactly one target")


def output_width(targets: Sequence[str], kind: str, num_classes: int) -> int:
    """The head's outputs: one per target (regression) or one logit per class."""
    return num_classes if kind == "classification" else len(targets)


class SupervisedTask(TaskModule):
    """Base of the tasks that fit a head to graph-level labels (``hparams.targets``, ``hparams.kind``).

    Regression heads predict standardised targets (``target_mean`` and ``target_std`` buffers, filled from
    the training split and saved with the model); classification heads predict logits.
    """

    def add_target_buffers(self, targets: Sequence[str]) -> None:
        self.register_buffer("target_mean", torch.zeros(len(targets)))
        self.register_buffer("target_std", torch.ones(len(targets)))

    def targets_of(self, batch) -> Tensor:
        """Targets [B, T] stacked in the order of ``targets``."""
        return graph_targets(batch, self.hparams.targets)

    def supervised_loss(
        self,
        out: Tensor,
        y: Tensor,
        stage: str,
        predictions: Tensor | None = None,
        per_atom: Tensor | int = 1,
    ) -> Tensor:
        """The loss of one batch, logged with its metrics: cross-entropy and accuracy of logits [B, C], or
        the MSE of standardised outputs [B, T] (targets divided by ``per_atom`` first) and the MAE of
        ``predictions`` [B, T] in target units (per target when there are several)."""
        options = {"batch_size": len(y), "on_epoch": True, "sync_dist": stage != "train"}
        if self.hparams.kind == "classification":
            labels = y.view(-1).long()
            loss = F.cross_entropy(out, labels)
            self.log(f"{stage}/accuracy", (out.argmax(1) == labels).float().mean(), **options)
        else:
            loss = F.mse_loss(out, (y / per_atom - self.target_mean) / self.target_std)
            mae = (predictions - y).abs().mean(0)  # [T]
            self.log(f"{stage}/mae", mae.mean(), **options)
            if len(mae) > 1:
                for name, value in zip(self.hparams.targets, mae):
                    self.log(f"{stage}/mae_{name}", value, **options)
        self.log(f"{stage}_loss", loss, prog_bar=True, **options)
        return loss
