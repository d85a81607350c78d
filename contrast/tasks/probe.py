"""Frozen-embedding probes: an MLP head trained by Lightning (this module), then the probe report.

After fitting, :func:`contrast.probes.report.probe_report` fits ridge/logistic, kNN and MLP probes on the
embeddings and, on the same split, on a freshly initialised encoder of the same architecture, element
fractions and element-property statistics. A number without its baselines is not a result.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.nn import functional as F

from contrast.nn.heads import PropertyHead
from contrast.tasks.base import (
    TaskModule,
    build,
    graph_targets,
    load_encoder_weights,
    plain,
    pretrained_encoder,
    require_test_split,
    standardise_targets,
)

log = logging.getLogger(__name__)


class ProbeTask(TaskModule):
    """An MLP probe on the embeddings of a frozen encoder.

    Args:
        encoder: ``_target_`` config of the encoder (from the pretrained checkpoint).
        targets: names of the graph properties to predict.
        kind: ``regression`` or ``classification`` (one target, integer labels).
        num_classes: number of classes for classification.
        head: keyword arguments of :class:`contrast.nn.heads.PropertyHead`.
        optimizer: ``_target_`` config of a torch optimiser.
        scheduler: warm-up + cosine settings, or None.
        seed: seed of the scikit-learn probes and the random-encoder baseline.
        task: the task name stored in the checkpoint.
    """

    def __init__(
        self,
        encoder: dict,
        targets: list[str],
        optimizer: dict,
        kind: str = "regression",
        num_classes: int = 2,
        head: dict | None = None,
        scheduler: dict | None = None,
        seed: int = 0,
        task: str = "probe",
    ):
        super().__init__()
        if kind not in ("regression", "classification"):
            raise ValueError(f"probe kind must be 'regression' or 'classification', not {kind!r}")
        if kind == "classification" and len(targets) != 1:
            raise ValueError("a classification probe takes exactly one target")
        self.save_hyperparameters()
        self.encoder = build(encoder).eval().requires_grad_(False)
        out_dim = num_classes if kind == "classification" else len(targets)
        self.head = PropertyHead(in_dim=self.encoder.embedding_dim, out_dim=out_dim, **(head or {}))
        self.register_buffer("target_mean", torch.zeros(len(targets)))
        self.register_buffer("target_std", torch.ones(len(targets)))
        self.optimizer_config = optimizer
        self.scheduler_config = scheduler
        self._embedding_cache: dict[int, Tensor] = {}

    def train(self, mode: bool = True) -> ProbeTask:
        super().train(mode)
        self.encoder.eval()  # frozen: no dropout or batch statistics updates, ever
        return self

    # -- embeddings --
    @torch.no_grad()
    def embeddings(self, batch) -> Tensor:
        """Frozen embeddings [B, D], cached by dataset index (the encoder never changes)."""
        indices = batch.idx.view(-1).tolist() if hasattr(batch, "idx") else None
        if indices is not None and all(i in self._embedding_cache for i in indices):
            return torch.stack([self._embedding_cache[i] for i in indices]).to(self.device)
        out = self.encoder.embed(batch)  # [B, D]
        if indices is not None:
            for i, row in zip(indices, out.detach().cpu()):
                self._embedding_cache[i] = row
        return out

    def targets_of(self, batch) -> Tensor:
        """Targets [B, T] stacked in the order of ``targets``."""
        return graph_targets(batch, self.hparams.targets)

    def setup(self, stage: str) -> None:
        if stage != "fit":
            return
        require_test_split(self.trainer.datamodule, "probe")  # before training, not after it
        if self.hparams.kind != "regression":
            return
        train_set = self.trainer.datamodule.train_set
        values = torch.stack([self.targets_of(train_set[i])[0] for i in range(len(train_set))]).double()
        standardise_targets(self.target_mean, self.target_std, values)

    # -- training --
    def forward(self, batch) -> Tensor:
        """Predictions: [B, T] in target units (regression) or logits [B, C] (classification)."""
        out = self.head(self.embeddings(batch))
        if self.hparams.kind == "regression":
            return out * self.target_std + self.target_mean
        return out

    def _step(self, batch, stage: str) -> Tensor:
        y = self.targets_of(batch)  # [B, T]
        out = self.head(self.embeddings(batch))
        if self.hparams.kind == "regression":
            loss = F.mse_loss(out, (y - self.target_mean) / self.target_std)
            mae = ((out * self.target_std + self.target_mean) - y).abs().mean()
            self.log(f"{stage}/mae", mae, batch_size=len(y), on_epoch=True, sync_dist=stage != "train")
        else:
            loss = F.cross_entropy(out, y.view(-1).long())
            accuracy = (out.argmax(1) == y.view(-1).long()).float().mean()
            self.log(
                f"{stage}/accuracy", accuracy, batch_size=len(y), on_epoch=True, sync_dist=stage != "train"
            )
        self.log(
            f"{stage}_loss", loss, batch_size=len(y), on_epoch=True, prog_bar=True, sync_dist=stage != "train"
        )
        return loss

    def parameter_groups(self):
        return list(self.head.parameters())

    @classmethod
    def run_setup(cls, cfg) -> tuple[ProbeTask, dict]:
        """Build from a run config: the encoder and its weights come from ``task.checkpoint``."""
        task_cfg = plain(cfg.task)
        task_cfg.pop("_target_")
        checkpoint_path = task_cfg.pop("checkpoint", None)
        targets = list(cfg.data.targets or [])
        if not checkpoint_path:
            raise ValueError("task=probe needs task.checkpoint=PATH (a pretrained checkpoint)")
        if not targets:
            raise ValueError("task=probe needs data.targets=[name,...] (the properties to probe)")
        encoder_cfg, weights = pretrained_encoder(checkpoint_path)
        module = cls(encoder=encoder_cfg, targets=targets, **task_cfg)
        load_encoder_weights(module.encoder, weights, checkpoint_path)
        return module, {}

    # -- after fitting: every probe on every feature set --
    def after_fit(self, trainer: pl.Trainer, datamodule, metrics, output_dir: Path) -> None:
        """Write the probe report (scored on the test split) into the run's metrics."""
        if not trainer.is_global_zero:
            return
        from contrast.probes.report import probe_report

        require_test_split(datamodule, "probe")
        train_set, test_set = datamodule.train_set, datamodule.test_set
        train = [train_set[i] for i in range(len(train_set))]  # read each graph once
        test = [test_set[i] for i in range(len(test_set))]
        hp = self.hparams
        report = probe_report(self.encoder, train, test, hp.targets, hp.kind, hp.seed, Path(output_dir))
        for key, value in report.items():
            metrics.add(key, value)
