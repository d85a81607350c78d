"""Frozen-embedding probes: an MLP probe (this LightningModule), ridge/logistic and kNN, with two baselines.

Every probe run reports, on the same split, the same probes on (1) a randomly initialised encoder of the
same architecture and (2) composition-only features (element fractions). A number without its baselines is
not a result.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from contrast.nn.heads import PropertyHead
from contrast.tasks.base import ENCODER_PREFIXES, TaskModule, build, plain

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
        return torch.stack([getattr(batch, name).view(-1) for name in self.hparams.targets], dim=1)

    def setup(self, stage: str) -> None:
        if stage != "fit" or self.hparams.kind != "regression":
            return
        train_set = self.trainer.datamodule.train_set
        values = torch.stack([self.targets_of(train_set[i])[0] for i in range(len(train_set))]).double()
        self.target_mean.copy_(values.mean(0))
        self.target_std.copy_(
            values.std(0).clamp_min(1e-8) if len(values) > 1 else torch.ones_like(values[0])
        )

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
        from contrast.checkpoint import load_module, read_checkpoint

        task_cfg = plain(cfg.task)
        task_cfg.pop("_target_")
        checkpoint_path = task_cfg.pop("checkpoint", None)
        targets = list(cfg.data.targets or [])
        if not checkpoint_path:
            raise ValueError("task=probe needs task.checkpoint=PATH (a pretrained checkpoint)")
        if not targets:
            raise ValueError("task=probe needs data.targets=[name,...] (the properties to probe)")
        checkpoint = read_checkpoint(checkpoint_path)
        pretrained = load_module(checkpoint, "encoder", ENCODER_PREFIXES, source=checkpoint_path)
        module = cls(encoder=checkpoint["hyper_parameters"]["encoder"], targets=targets, **task_cfg)
        module.encoder.load_state_dict(pretrained.state_dict())
        return module, {}

    # -- after fitting: the scikit-learn probes and the baselines --
    def after_fit(self, trainer: pl.Trainer, datamodule, metrics, output_dir: Path) -> None:
        if not trainer.is_global_zero:
            return
        results = probe_report(self, datamodule, Path(output_dir))
        for key, value in results.items():
            metrics.add(key, value)


def _features(encoder: nn.Module, graphs: list) -> np.ndarray:
    from contrast.pretrained import embed

    return embed(encoder, graphs, batch_size=64).double().numpy()


def _labels(module: ProbeTask, graphs: list) -> np.ndarray:
    return np.stack([module.targets_of(graph)[0].double().numpy() for graph in graphs])


def probe_report(module: ProbeTask, datamodule, output_dir: Path) -> dict[str, Any]:
    """Fit linear and kNN probes on the frozen embeddings and on the two baselines; plot parity."""
    from contrast.probes import composition_features, random_encoder_like, run_probes

    train_set = datamodule.train_set
    test_set = datamodule.test_set if len(datamodule.test_set or []) else datamodule.val_set
    train = [train_set[i] for i in range(len(train_set))]  # read each graph once
    test = [test_set[i] for i in range(len(test_set))]
    y_train, y_test = _labels(module, train), _labels(module, test)
    kind, seed = module.hparams.kind, module.hparams.seed
    random_encoder = random_encoder_like(module.encoder, seed=seed)
    features = {
        "pretrained": (_features(module.encoder, train), _features(module.encoder, test)),
        "random_encoder": (_features(random_encoder, train), _features(random_encoder, test)),
        "composition": (
            composition_features([graph.z.numpy() for graph in train]),
            composition_features([graph.z.numpy() for graph in test]),
        ),
    }
    mlp_test = _mlp_predictions(module, test_set)
    report: dict[str, Any] = {"probe_split": {"train": len(train_set), "test": len(test_set)}}
    for t, name in enumerate(module.hparams.targets):
        per_target: dict[str, Any] = {}
        for feature_name, (x_train, x_test) in features.items():
            # Parity plots (regression) or confusion matrices (classification) for the pretrained embeddings.
            plots = output_dir / f"plots_{name}" if feature_name == "pretrained" else None
            per_target[feature_name] = run_probes(
                x_train, y_train[:, t], x_test, y_test[:, t], kind, seed, plot_dir=plots
            )
        per_target["pretrained"]["mlp"] = _mlp_metrics(mlp_test, y_test, t, kind)
        report[name] = per_target
    return report


@torch.no_grad()
def _mlp_predictions(module: ProbeTask, dataset) -> np.ndarray:
    from torch_geometric.loader import DataLoader as GraphLoader

    module.eval()
    rows = [module(batch.to(module.device)).double().cpu() for batch in GraphLoader(dataset, batch_size=64)]
    return torch.cat(rows).numpy()


def _mlp_metrics(predictions: np.ndarray, y: np.ndarray, t: int, kind: str) -> dict[str, float]:
    from contrast.probes import classification_metrics, regression_metrics

    if kind == "regression":
        return regression_metrics(y[:, t], predictions[:, t])
    proba = torch.softmax(torch.from_numpy(predictions), dim=1).numpy()
    return classification_metrics(y[:, t].astype(int), proba.argmax(1), proba)
