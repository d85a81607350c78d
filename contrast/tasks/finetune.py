"""Fine-tuning: a (pretrained or fresh) encoder and a property head trained together on graph labels.

Options on top of plain training: layer-wise learning-rate decay, a frozen encoder for the first epochs, an
exponential moving average (EMA) of the weights, and early stopping. After fitting, the test predictions are
scored next to the composition baselines of the probe report on the same split.

Checkpoint layout: ``encoder.*`` and ``head.*`` hold the weights that are evaluated, so
``contrast.load_encoder(checkpoint)`` returns the fine-tuned encoder. With ``ema_decay`` those are the moving
average, and the weights the optimiser updates live under ``online.encoder.*`` and ``online.head.*`` (needed
to resume); without it there is one copy.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from contrast.nn.geometry import graph_index
from contrast.nn.heads import PropertyHead
from contrast.tasks.averaging import add_online_copy, check_decay, ema_step
from contrast.tasks.base import build, plain
from contrast.tasks.callbacks import RestoreBest
from contrast.tasks.schedules import layer_decay_groups
from contrast.tasks.starts import load_encoder_weights, run_arguments, starting_encoder
from contrast.tasks.supervised import (
    SupervisedTask,
    check_kind,
    output_width,
    require_test_split,
    standardise_targets,
)


class FinetuneTask(SupervisedTask):
    """An encoder and a :class:`PropertyHead` trained end to end on graph-level targets.

    Regression targets are standardised with the training split's mean and std (buffers saved with the model)
    and trained with MSE; classification uses cross-entropy on one integer target.

    Args:
        encoder: ``_target_`` config of the encoder (taken from the pretrained checkpoint when there is one).
        targets: names of the graph properties to predict.
        optimizer: ``_target_`` config of a torch optimiser; its ``lr`` is the head's learning rate.
        kind: ``regression`` or ``classification`` (one target, labels 0..num_classes-1).
        num_classes: number of classes for classification.
        readout: ``mean``: the head reads the encoder's graph embedding (``embed``: its pooling and readout
            layers; intensive targets); ``sum``: the head maps each atom's last-layer features to a
            contribution and these are summed per structure (extensive targets such as total energies; the
            encoder's pooling and readout layers do not apply). With ``sum`` the statistics and the loss are
            per atom.
        head: keyword arguments of :class:`contrast.nn.heads.PropertyHead` (``in_dim``/``out_dim`` are set).
        scheduler: warm-up + cosine settings, or None.
        layer_decay: learning-rate multiplier per encoder block, counted down from the head (1.0: off).
        freeze_epochs: train the head alone (encoder frozen and in eval mode) for this many epochs first.
        ema_decay: decay of an exponential moving average of all weights, used for validation, test and the
            checkpoint's ``encoder.*``/``head.*`` (None: off). The first updates use
            ``min(ema_decay, (1 + n) / (10 + n))`` so that the average forgets the initial head quickly.
        early_stopping: keyword arguments of Lightning's ``EarlyStopping`` (e.g. ``monitor``, ``patience``),
            or None.
        restore_best: after fitting, restore the weights of the validation with the lowest ``val_loss``, so
            the test report, ``best.ckpt`` and a published encoder use the best epoch, not the last.
        seed: seeds the fresh encoder and the baseline probes.
        task: the task name stored in the checkpoint.
    """

    def __init__(
        self,
        encoder: dict,
        targets: list[str],
        optimizer: dict,
        kind: str = "regression",
        num_classes: int = 2,
        readout: str = "mean",
        head: dict | None = None,
        scheduler: dict | None = None,
        layer_decay: float = 1.0,
        freeze_epochs: int = 0,
        ema_decay: float | None = None,
        early_stopping: dict | None = None,
        restore_best: bool = True,
        seed: int = 0,
        task: str = "finetune",
    ):
        super().__init__()
        _check_options(targets, kind, readout, layer_decay, freeze_epochs, ema_decay)
        self.save_hyperparameters()
        self.encoder = build(encoder)
        in_dim = self.encoder.embedding_dim if readout == "mean" else self.encoder.feature_dim
        self.head = PropertyHead(
            in_dim=in_dim, out_dim=output_width(targets, kind, num_classes), **(head or {})
        )
        if ema_decay is not None:  # the optimiser trains `online`; `encoder`/`head` hold the average
            online = nn.ModuleDict({"encoder": copy.deepcopy(self.encoder), "head": copy.deepcopy(self.head)})
            add_online_copy(self, online, [self.encoder, self.head])
        self.add_target_buffers(targets)
        self.optimizer_config = optimizer
        self.scheduler_config = scheduler
        self.encoder_frozen = False

    # -- the two copies --
    @property
    def trained_encoder(self) -> nn.Module:
        """The encoder the optimiser updates (the same module as ``encoder`` without EMA)."""
        return self.online["encoder"] if self.hparams.ema_decay is not None else self.encoder

    @property
    def trained_head(self) -> nn.Module:
        return self.online["head"] if self.hparams.ema_decay is not None else self.head

    def start_from(self, weights: dict[str, Tensor], source: str) -> None:
        """Load pretrained encoder weights into both copies (strict; the file is named on a mismatch)."""
        load_encoder_weights(self.trained_encoder, weights, source)
        if self.hparams.ema_decay is not None:
            self.encoder.load_state_dict(self.trained_encoder.state_dict())

    @torch.no_grad()
    def update_average(self) -> None:
        """One EMA step of ``encoder``/``head`` towards the trained weights; buffers are copied."""
        pairs = ((self.encoder, self.online["encoder"]), (self.head, self.online["head"]))
        ema_step(pairs, self.hparams.ema_decay, self.ema_updates)

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        if self.hparams.ema_decay is not None:
            self.update_average()

    # -- freezing --
    def set_encoder_frozen(self, frozen: bool) -> None:
        """Freeze (no gradients, eval mode) or unfreeze the trained encoder; its optimiser groups stay."""
        self.encoder_frozen = frozen
        self.trained_encoder.requires_grad_(not frozen)
        self.trained_encoder.train(self.training and not frozen)

    def train(self, mode: bool = True) -> FinetuneTask:
        super().train(mode)
        if self.encoder_frozen:
            self.trained_encoder.eval()  # no dropout or batch-statistics updates while frozen
        return self

    def on_fit_start(self) -> None:
        strategy = self.trainer.strategy
        find_unused = getattr(strategy, "_ddp_kwargs", {}).get("find_unused_parameters", False)
        if (
            self.current_epoch < self.hparams.freeze_epochs
            and self.trainer.world_size > 1
            and not find_unused
        ):
            raise ValueError(
                "task.freeze_epochs > 0 under DDP leaves the encoder without gradients in the first epochs, "
                "which DDP refuses: add trainer.strategy=ddp_find_unused_parameters_true"
            )

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        # From the epoch being run, so a resumed run is frozen exactly when the original was.
        self.set_encoder_frozen(self.current_epoch < self.hparams.freeze_epochs)

    def parameter_groups(self) -> list[dict]:
        """The head at ``lr``, then the encoder's blocks with layer decay, frozen or not (so unfreezing needs
        no new optimiser; a frozen parameter has no gradient and the optimiser skips it)."""
        lr = float(self.optimizer_config.get("lr", 1e-3))
        encoder = self.trained_encoder
        flags = [p.requires_grad for p in encoder.parameters()]
        encoder.requires_grad_(True)
        try:
            groups = layer_decay_groups(encoder, lr, self.hparams.layer_decay)
        finally:
            for p, flag in zip(encoder.parameters(), flags):
                p.requires_grad_(flag)
        return [{"params": list(self.trained_head.parameters()), "lr": lr}, *groups]

    def configure_callbacks(self) -> list[pl.Callback]:
        callbacks: list[pl.Callback] = []
        if self.hparams.early_stopping:
            callbacks.append(
                pl.callbacks.EarlyStopping(**{"mode": "min", **plain(self.hparams.early_stopping)})
            )
        if self.hparams.restore_best:
            callbacks.append(RestoreBest("val_loss", "min"))
        return callbacks

    # -- data --
    def setup(self, stage: str) -> None:
        if stage != "fit":
            return
        datamodule = self.trainer.datamodule
        require_test_split(datamodule, "finetune")
        train_set = datamodule.train_set
        graphs = [train_set[i] for i in range(len(train_set))]
        values = torch.cat([self.targets_of(g) for g in graphs]).double()  # [n, T]
        if self.hparams.kind == "classification":
            _check_labels(values[:, 0], self.hparams.num_classes, self.hparams.targets[0])
            return
        if self.hparams.readout == "sum":
            values = values / torch.tensor([[g.z.numel()] for g in graphs], dtype=values.dtype)
        standardise_targets(self.target_mean, self.target_std, values)

    # -- model --
    def _outputs(self, batch, encoder: nn.Module, head: nn.Module) -> Tensor:
        """Standardised predictions [B, T] (per atom for ``sum``), or logits [B, C]."""
        if self.hparams.readout == "mean":
            return head(encoder.embed(batch))  # [B, embedding_dim] -> [B, out]
        per_atom = head(encoder(batch))  # [N, D] -> [N, out]
        # [B, out]: the mean contribution; to_units multiplies by the atom count, which makes it a sum
        return scatter(per_atom, graph_index(batch), dim=0, dim_size=batch.num_graphs, reduce="mean")

    def _atoms(self, batch) -> Tensor:
        """Atoms per structure [B, 1]."""
        return torch.bincount(graph_index(batch), minlength=batch.num_graphs).unsqueeze(1)  # [B, 1]

    def to_units(self, outputs: Tensor, batch) -> Tensor:
        """Standardised outputs [B, T] -> predictions in target units [B, T]."""
        values = outputs * self.target_std + self.target_mean
        return values * self._atoms(batch) if self.hparams.readout == "sum" else values

    def forward(self, batch) -> Tensor:
        """Predictions of the evaluated weights: [B, T] in target units, or logits [B, C]."""
        outputs = self._outputs(batch, self.encoder, self.head)
        return outputs if self.hparams.kind == "classification" else self.to_units(outputs, batch)

    def _step(self, batch, stage: str) -> Tensor:
        training = stage == "train"
        encoder, head = (self.trained_encoder, self.trained_head) if training else (self.encoder, self.head)
        y = self.targets_of(batch)  # [B, T]
        out = self._outputs(batch, encoder, head)  # [B, T] standardised, or logits [B, C]
        if self.hparams.kind == "classification":
            return self.supervised_loss(out, y, stage)
        per_atom = self._atoms(batch) if self.hparams.readout == "sum" else 1
        return self.supervised_loss(out, y, stage, self.to_units(out, batch), per_atom)

    # -- a run --
    @classmethod
    def run_setup(cls, cfg) -> tuple[FinetuneTask, dict]:
        """Build from a run config: ``task.checkpoint`` (a file or a shipped name) or, when null, a fresh
        encoder of ``cfg.encoder`` initialised with ``task.seed``."""
        task_cfg, checkpoint = run_arguments(cfg)
        targets = list(cfg.data.targets or [])
        if not targets:
            raise ValueError("task=finetune needs data.targets=[name,...] (the properties to fine-tune on)")
        encoder_cfg, weights = starting_encoder(cfg, checkpoint)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(task_cfg.get("seed", 0)))
            module = cls(encoder=encoder_cfg, targets=targets, **task_cfg)
        if weights is not None:
            module.start_from(weights, checkpoint)
        return module, {}

    def after_fit(self, trainer: pl.Trainer, datamodule, metrics, output_dir: Path) -> None:
        """Score the test split with the evaluated weights next to the composition baselines; parity plots."""
        if not trainer.is_global_zero:
            return
        from contrast.tasks.finetune_report import finetune_report

        report = finetune_report(self, datamodule, Path(output_dir))
        for key, value in report.items():
            metrics.add(key, value)


def _check_options(
    targets: list[str], kind: str, readout: str, layer_decay: float, freeze_epochs: int, ema_decay
) -> None:
    """Clear errors for options that cannot work together."""
    if not targets:
        raise ValueError("FinetuneTask needs at least one target")
    check_kind(kind, targets, "finetune")
    if readout not in ("mean", "sum"):
        raise ValueError(f"finetune readout must be 'mean' (intensive) or 'sum' (extensive), not {readout!r}")
    if kind == "classification" and (len(targets) != 1 or readout != "mean"):
        raise ValueError("classification fine-tuning takes exactly one target and readout='mean'")
    if not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}")
    if freeze_epochs < 0:
        raise ValueError(f"freeze_epochs must be >= 0, got {freeze_epochs}")
    check_decay(ema_decay)


def _check_labels(labels: Tensor, num_classes: int, name: str) -> None:
    bad = (labels != labels.round()) | (labels < 0) | (labels >= num_classes)
    if bool(bad.any()):
        raise ValueError(
            f"target {name!r}: classification needs integer labels 0..{num_classes - 1} (task.num_classes), "
            f"found {labels[bad][0].item()}"
        )
