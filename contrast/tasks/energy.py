"""Energy head on a (pretrained) encoder, trained on energies, forces and optionally stress."""

from __future__ import annotations

import copy
import logging

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from contrast.nn.forces import energy_forces_stress
from contrast.nn.heads import EnergyHead, EnergyModel
from contrast.tasks.averaging import add_online_copy, check_decay, ema_step
from contrast.tasks.base import TaskModule, build
from contrast.tasks.callbacks import RestoreBest
from contrast.tasks.schedules import layer_decay_groups
from contrast.tasks.starts import load_encoder_weights, run_arguments, starting_encoder

log = logging.getLogger(__name__)

LOSS_KINDS = ("mse", "huber")


class EnergyTask(TaskModule):
    """Energies, forces (F = -dE/dpos) and stress ((1/V) dE/d strain) from an energy head on an encoder.

    Args:
        encoder: ``_target_`` config of the encoder (taken from the pretrained checkpoint when there is one).
        head: keyword arguments of :class:`contrast.nn.heads.EnergyHead` (``in_dim`` is filled in).
        optimizer: ``_target_`` config of a torch optimiser.
        scheduler: warm-up + cosine settings, or None.
        loss_weights: weights of the ``energy`` (per atom), ``forces`` and ``stress`` terms.
        loss_kind: the penalty of each term: ``mse`` (mean squared error) or ``huber`` (squared below
            ``huber_delta``, linear above it: large errors of a few frames pull less; the form MACE trains
            with).
        huber_delta: where the Huber penalty turns linear, in each term's unit (eV/atom, eV/Å, eV/Å^3).
        freeze_encoder: train the head only.
        layer_decay: learning-rate multiplier per encoder block, counted down from the head
            (1.0: one learning rate; 0.8: the last layer gets 0.8x, the one before 0.64x, ...).
        fit_references: fit per-element reference energies and the per-atom shift and scale on the training
            set.
        energy_scale: what sets the head's per-atom scale: ``energy`` (the std of the residual energy per
            atom after the references) or ``forces`` (the RMS force component of the training set, eV/Å
            times 1 Å); the comparison is in BENCHMARKS.md, "Energy head on mlearn".
        restore_best: after fitting, restore the weights of the validation with the lowest ``val_loss``
            (the test split, the saved ``best.ckpt`` and the report use them).
        ema_decay: decay of an exponential moving average of the weights (warmed up as
            ``min(ema_decay, (1 + n) / (10 + n))``), or None. With it, ``model.*`` in the checkpoint holds
            the average (validated, tested and loaded by the calculator) and ``online.*`` the weights the
            optimiser updates (needed to resume).
        task: the task name stored in the checkpoint.
    """

    def __init__(
        self,
        encoder: dict,
        optimizer: dict,
        head: dict | None = None,
        scheduler: dict | None = None,
        loss_weights: dict | None = None,
        freeze_encoder: bool = False,
        layer_decay: float = 1.0,
        fit_references: bool = True,
        energy_scale: str = "energy",
        restore_best: bool = True,
        ema_decay: float | None = None,
        loss_kind: str = "mse",
        huber_delta: float = 0.01,
        task: str = "energy",
    ):
        if loss_kind not in LOSS_KINDS:
            raise ValueError(f"loss_kind must be one of {sorted(LOSS_KINDS)}, got {loss_kind!r}")
        if not huber_delta > 0:
            raise ValueError(f"huber_delta must be positive, got {huber_delta}")
        if energy_scale not in ("energy", "forces"):
            raise ValueError(f"energy_scale must be 'energy' or 'forces', got {energy_scale!r}")
        check_decay(ema_decay)
        super().__init__()
        self.save_hyperparameters()
        encoder_module = build(encoder)
        head_module = EnergyHead(in_dim=encoder_module.feature_dim, **(head or {}))
        self.model = EnergyModel(encoder_module, head_module)
        if ema_decay is not None:  # the optimiser trains `online`; `model` holds the average
            add_online_copy(self, copy.deepcopy(self.model), [self.model])
        self.loss_weights = {"energy": 1.0, "forces": 10.0, "stress": 0.0, **(loss_weights or {})}
        self.optimizer_config = optimizer
        self.scheduler_config = scheduler
        if freeze_encoder:
            self.trained_model.encoder.requires_grad_(False)

    @property
    def encoder(self) -> nn.Module:
        return self.model.encoder

    @property
    def trained_model(self) -> EnergyModel:
        """The model the optimiser updates (the same module as ``model`` without EMA)."""
        return self.online if self.hparams.ema_decay is not None else self.model

    def start_from(self, weights: dict[str, Tensor], source: str) -> None:
        """Load pretrained encoder weights into the trained model and its average (strict)."""
        load_encoder_weights(self.trained_model.encoder, weights, source)
        if self.hparams.ema_decay is not None:
            self.model.load_state_dict(self.online.state_dict())

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        if self.hparams.ema_decay is not None:
            ema_step([(self.model, self.online)], self.hparams.ema_decay, self.ema_updates)

    def parameter_groups(self) -> list[dict]:
        lr = float(self.optimizer_config.get("lr", 1e-3))
        model = self.trained_model
        groups = [{"params": [p for p in model.head.parameters() if p.requires_grad], "lr": lr}]
        groups += layer_decay_groups(model.encoder, lr, self.hparams.layer_decay)
        return [group for group in groups if group["params"]]

    def setup(self, stage: str) -> None:
        if stage != "fit" or not self.hparams.fit_references:
            return
        train_set = self.trainer.datamodule.train_set
        graphs = [train_set[i] for i in range(len(train_set))]
        z_list = [graph.z for graph in graphs]
        energies = torch.cat([graph.energy.reshape(1) for graph in graphs])
        head = self.trained_model.head
        head.fit_reference_energies(z_list, energies)
        if self.hparams.energy_scale == "forces":
            forces = torch.cat([graph.forces.reshape(-1) for graph in graphs]).double()
            rms = float(forces.pow(2).mean().sqrt())
            if rms > 1e-12:
                head.scale.fill_(rms)
        log.info(
            "fitted per-element reference energies on %d structures; per-atom shift %.4g eV, scale %.4g eV",
            len(z_list),
            float(head.shift),
            float(head.scale),
        )
        if self.hparams.ema_decay is not None:
            self.model.load_state_dict(self.online.state_dict())

    def configure_callbacks(self) -> list[pl.Callback]:
        return [RestoreBest("val_loss", "min")] if self.hparams.restore_best else []

    @property
    def _needs_stress(self) -> bool:
        return self.loss_weights["stress"] > 0

    def forward(self, batch, training: bool = False) -> dict[str, Tensor]:
        """``energy`` [B], ``forces`` [N, 3] and, when trained on, ``stress`` [B, 3, 3]; from the trained
        weights when ``training``, else from the evaluated ones (the average with EMA)."""
        return energy_forces_stress(
            self.trained_model if training else self.model,
            batch,
            compute_forces=True,
            compute_stress=self._needs_stress,
            training=training,
        )

    def _penalty(self, error: Tensor) -> Tensor:
        """Mean penalty of ``error`` (any shape): squared, or Huber with ``huber_delta``."""
        if self.hparams.loss_kind == "huber":
            return F.huber_loss(error, torch.zeros_like(error), delta=self.hparams.huber_delta)
        return error.pow(2).mean()

    def _step(self, batch, stage: str) -> Tensor:
        out = self(batch, training=stage == "train")
        atoms = torch.bincount(batch.batch, minlength=batch.num_graphs).to(out["energy"].dtype)  # [B]
        energy_error = (out["energy"] - batch.energy.view(-1)) / atoms  # [B] eV/atom
        force_error = out["forces"] - batch.forces  # [N, 3]
        loss = self.loss_weights["energy"] * self._penalty(energy_error)
        loss = loss + self.loss_weights["forces"] * self._penalty(force_error)
        metrics = {
            f"{stage}/energy_mae_per_atom": energy_error.abs().mean(),
            f"{stage}/force_mae": force_error.abs().mean(),
        }
        if self._needs_stress and hasattr(batch, "stress"):
            stress_error = out["stress"] - batch.stress.view(-1, 3, 3)  # [B, 3, 3]
            loss = loss + self.loss_weights["stress"] * self._penalty(stress_error)
            metrics[f"{stage}/stress_mae"] = stress_error.abs().mean()
        on_step = stage == "train"
        self.log_dict(metrics, batch_size=batch.num_graphs, on_epoch=True, sync_dist=not on_step)
        self.log(
            f"{stage}_loss",
            loss,
            batch_size=batch.num_graphs,
            on_epoch=True,
            prog_bar=True,
            sync_dist=not on_step,
        )
        return loss

    def errors_by_group(self, dataset, groups: list[str], batch_size: int = 8) -> dict[str, dict[str, float]]:
        """Energy MAE per atom (eV/atom) and force MAE (eV/Å, over all components) of the evaluated weights on
        ``dataset``, for each group of ``groups`` (one label per item) and for ``all``."""
        from torch_geometric.loader import DataLoader

        sums: dict[
            str, list[float]
        ] = {}  # group -> [structures, energy error sum, force error sum, components]
        loader = DataLoader([dataset[i] for i in range(len(dataset))], batch_size=batch_size, shuffle=False)
        start = 0
        with torch.enable_grad():
            for batch in loader:
                batch = batch.to(self.device)
                out = self(batch)
                atoms = torch.bincount(batch.batch, minlength=batch.num_graphs)  # [B]
                energy = ((out["energy"] - batch.energy.view(-1)).abs() / atoms).detach()  # [B]
                force = (out["forces"] - batch.forces).abs().sum(1).detach()  # [N]
                force = torch.zeros(batch.num_graphs, device=force.device).index_add_(0, batch.batch, force)
                for k in range(batch.num_graphs):
                    for name in (groups[start + k], "all"):
                        row = sums.setdefault(name, [0, 0.0, 0.0, 0])
                        row[0] += 1
                        row[1] += float(energy[k])
                        row[2] += float(force[k])
                        row[3] += 3 * int(atoms[k])
                start += batch.num_graphs
        return {
            name: {"structures": n, "energy_mae_per_atom": e / n, "force_mae": f / max(c, 1)}
            for name, (n, e, f, c) in sorted(sums.items())
        }

    def after_fit(self, trainer: pl.Trainer, datamodule, metrics, output_dir) -> None:
        """With groups (``data.group_key``), the validation errors per group into ``metrics.json``."""
        groups = datamodule.part_groups("val") if hasattr(datamodule, "part_groups") else None
        if not trainer.is_global_zero or not groups:
            return
        by_group = self.errors_by_group(datamodule.val_set, groups)
        metrics.add("val_by_group", by_group)
        for name, row in by_group.items():
            log.info(
                "val %s (%d structures): %.2f meV/atom, %.4f eV/Å",
                name,
                row["structures"],
                1000 * row["energy_mae_per_atom"],
                row["force_mae"],
            )

    @classmethod
    def run_setup(cls, cfg) -> tuple[EnergyTask, dict]:
        """Build from a run config, starting from ``task.checkpoint``'s encoder when given."""
        task_cfg, checkpoint_path = run_arguments(cfg)
        encoder_cfg, weights = starting_encoder(cfg, checkpoint_path)
        module = cls(encoder=encoder_cfg, **task_cfg)
        if weights is not None:
            module.start_from(weights, checkpoint_path)
        targets = ["energy", "forces"] + (["stress"] if module._needs_stress else [])
        return module, {"targets": targets}
