"""Frozen-embedding probes: an MLP head trained by Lightning (this module), then the probe report.

After fitting, :func:`contrast.evaluation.probes.report.probe_report` fits ridge/logistic, kNN and MLP probes
on the
embeddings and, on the same split, on a freshly initialised encoder of the same architecture, element
fractions and element-property statistics. A number without its baselines is not a result.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import Tensor

from contrast.nn.heads import PropertyHead
from contrast.tasks.base import build
from contrast.tasks.starts import load_encoder_weights, run_arguments, starting_encoder
from contrast.tasks.supervised import (
    SupervisedTask,
    check_kind,
    output_width,
    require_test_split,
    standardise_targets,
)

log = logging.getLogger(__name__)


class ProbeTask(SupervisedTask):
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
        check_kind(kind, targets, "probe")
        self.save_hyperparameters()
        self.encoder = build(encoder).eval().requires_grad_(False)
        out_dim = output_width(targets, kind, num_classes)
        self.head = PropertyHead(in_dim=self.encoder.embedding_dim, out_dim=out_dim, **(head or {}))
        self.add_target_buffers(targets)
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
        out = self.head(self.embeddings(batch))  # [B, T] standardised, or logits [B, C]
        predictions = out * self.target_std + self.target_mean if self.hparams.kind == "regression" else None
        return self.supervised_loss(out, y, stage, predictions)

    def parameter_groups(self):
        return list(self.head.parameters())

    @classmethod
    def run_setup(cls, cfg) -> tuple[ProbeTask, dict]:
        """Build from a run config: the encoder and its weights come from ``task.checkpoint``."""
        task_cfg, checkpoint_path = run_arguments(cfg)
        targets = list(cfg.data.targets or [])
        if not checkpoint_path:
            raise ValueError("task=probe needs task.checkpoint=PATH (a pretrained checkpoint)")
        if not targets:
            raise ValueError("task=probe needs data.targets=[name,...] (the properties to probe)")
        encoder_cfg, weights = starting_encoder(cfg, checkpoint_path)
        module = cls(encoder=encoder_cfg, targets=targets, **task_cfg)
        load_encoder_weights(module.encoder, weights, checkpoint_path)
        return module, {}

    # -- after fitting: every probe on every feature set --
    def after_fit(self, trainer: pl.Trainer, datamodule, metrics, output_dir: Path) -> None:
        """Write the probe report (scored on the test split) into the run's metrics."""
        if not trainer.is_global_zero:
            return
        from contrast.evaluation.probes.report import probe_report

        require_test_split(datamodule, "probe")
        train_set, test_set = datamodule.train_set, datamodule.test_set
        train = [train_set[i] for i in range(len(train_set))]  # read each graph once
        test = [test_set[i] for i in range(len(test_set))]
        hp = self.hparams
        report = probe_report(self.encoder, train, test, hp.targets, hp.kind, hp.seed, Path(output_dir))
        for key, value in report.items():
            metrics.add(key, value)
