"""Self-supervised pretraining: InfoNCE over two augmented views, plus optional pretext objectives.

The loss is ``contrastive * InfoNCE + denoising.weight * denoising + masking.weight * masked species`` (the
``objectives`` config group). Denoising displaces the atoms of view b and asks an equivariant head to recover
the displacement from the encoder's per-atom features; masking hides the element of some atoms of view a and
asks a head to name it from their environment. Both reuse the forward passes InfoNCE needs anyway.
"""

from __future__ import annotations

import torch
from torch import Tensor

from contrast.augment.batched import BatchedViews
from contrast.augment.corruption import displace_atoms, mask_species
from contrast.augment.views import view_seed
from contrast.losses import alignment, embedding_std, positive_negative_similarity, uniformity
from contrast.losses.contrastive import MIN_BATCH
from contrast.losses.pretext import denoising_loss, masked_species_loss
from contrast.nn.pretext import DisplacementHead, SpeciesHead
from contrast.tasks.base import TaskModule, build, plain
from contrast.tasks.starts import run_arguments

DEFAULT_OBJECTIVES = {
    "contrastive": 1.0,
    "denoising": {"weight": 0.0, "sigma": 0.1},
    "masking": {"weight": 0.0, "fraction": 0.15},
    "seed": 0,
}


def objective_settings(objectives: dict | None) -> dict:
    """The objectives config with every key filled in; unknown keys are an error."""
    settings = {
        key: dict(value) if isinstance(value, dict) else value for key, value in DEFAULT_OBJECTIVES.items()
    }
    for key, value in (objectives or {}).items():
        if key not in settings:
            raise ValueError(f"unknown objective {key!r}; known: {sorted(settings)}")
        if isinstance(settings[key], dict):
            unknown = set(value) - set(settings[key])
            if unknown:
                raise ValueError(f"objectives.{key}: unknown settings {sorted(unknown)}")
            settings[key].update(value)
        else:
            settings[key] = value
    return settings


class ContrastiveTask(TaskModule):
    """Self-supervised pretraining of a crystal encoder.

    Args:
        encoder: ``_target_`` config of a :class:`contrast.nn.base.CrystalEncoder`.
        projector: ``_target_`` config of the projection head (``in_dim`` is filled in).
        loss: ``_target_`` config of a loss module taking ``(z_a [B, P], z_b [B, P])``; one whose class sets
            ``uses_ids = True`` also gets ``ids=`` the dataset indices [B] of the batch (``view_a.idx``).
        optimizer: ``_target_`` config of a torch optimiser (``params`` is filled in).
        scheduler: ``{"warmup_epochs", "min_lr_ratio"}`` for warm-up + cosine per step, or None.
        objectives: weights of the terms (``contrastive``, ``denoising.weight``, ``masking.weight``), the
            noise ``denoising.sigma`` (Å), the ``masking.fraction`` and the corruptions' ``seed``; see
            :data:`DEFAULT_OBJECTIVES`. A head is built only for a term with a positive weight.
        task: the task name, stored so loaders know what the checkpoint holds.
    """

    def __init__(
        self,
        encoder: dict,
        projector: dict,
        loss: dict,
        optimizer: dict,
        scheduler: dict | None = None,
        objectives: dict | None = None,
        task: str = "contrastive",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = build(encoder)
        if getattr(self.encoder, "readout_layers", "last") != "last":
            raise ValueError(
                "contrastive pretraining reads the encoder's last layer: set encoder.readout_layers=last "
                "(readout_layers=all is a readout for probes and fine-tuning, "
                "e.g. contrast.evaluate layers=all)"
            )
        self.projector = build(projector, in_dim=self.encoder.embedding_dim)
        self.loss_fn = build(loss)
        self.optimizer_config = optimizer
        self.scheduler_config = scheduler
        self.objectives = objective_settings(objectives)
        width = self.encoder.feature_dim
        if self.objectives["denoising"]["weight"] > 0:
            self.displacement_head = DisplacementHead(width, cutoff=self.encoder.cutoff)
        if self.objectives["masking"]["weight"] > 0:
            embedding = getattr(self.encoder, "embedding", None)
            if not isinstance(embedding, torch.nn.Embedding):
                raise ValueError("masked-species prediction needs an encoder with an `embedding` of species")
            self.species_head = SpeciesHead(width, num_species=embedding.num_embeddings)

    def forward(self, batch) -> Tensor:
        """Graph embeddings [B, D] (what probes and ``contrast.embed`` use)."""
        return self.encoder.embed(batch)

    def parameter_groups(self) -> list[dict]:
        """Everything with the optimiser's weight decay, except the loss's parameters (a learnt temperature).

        Weight decay on ``log_temperature`` would pull the temperature towards 1 regardless of the loss.
        """
        loss_params = {id(p) for p in self.loss_fn.parameters()}
        trainable = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in trainable if id(p) not in loss_params]}]
        no_decay = [p for p in trainable if id(p) in loss_params]
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0})
        return groups

    def _corruption_generator(self, view_a, stage: str) -> torch.Generator:
        """A generator keyed by the batch's dataset indices (and the epoch while training): each rank and
        micro-batch draws its own corruptions, a resumed run draws the same ones, and validation and test
        draw the same ones every epoch, so their losses compare epochs, not draws."""
        idx = getattr(view_a, "idx", None)
        if idx is not None:
            idx = idx.view(-1).long()
            batch_key = (int(idx.sum()) * 1_000_003 + int(idx[0]) * 7_919 + int(idx.numel())) % 2**62
        else:  # graphs without dataset indices: the step and the rank
            batch_key = int(self.global_step) * 1_024 + int(self.global_rank)
        stage_key = ("train", "val", "test").index(stage) if stage in ("train", "val", "test") else 3
        epoch = int(self.current_epoch) if stage == "train" else None
        seed = view_seed(int(self.objectives["seed"]), epoch, batch_key * 4 + stage_key)
        return torch.Generator().manual_seed(seed)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """With ``augment.on_device=true`` the loader yields structures: their two views are made here, on the
        device (:class:`~contrast.augment.batched.BatchedViews`); otherwise the batch passes unchanged."""
        trainer = self._trainer
        views = getattr(getattr(trainer, "datamodule", None), "view_transform", None)
        if not isinstance(views, BatchedViews):
            return batch
        epoch = (
            int(self.current_epoch) if trainer.training else None
        )  # val and test: the same views each epoch
        return list(views(batch, views.generator(batch, epoch)))

    def _step(self, views, stage: str) -> Tensor:
        view_a, view_b = views
        objectives = self.objectives
        denoise, masking = objectives["denoising"], objectives["masking"]
        generator = self._corruption_generator(view_a, stage)
        if masking["weight"] > 0:
            view_a, masked, species = mask_species(view_a, masking["fraction"], generator)  # [M], [M]
        if denoise["weight"] > 0:
            view_b, noise = displace_atoms(view_b, denoise["sigma"], generator)  # noise [N_b, 3]
        nodes_a, nodes_b = self.encoder(view_a), self.encoder(view_b)  # [N_a, D], [N_b, D]
        h_a, h_b = self.encoder.readout(nodes_a, view_a), self.encoder.readout(nodes_b, view_b)  # [B, D]
        z_a, z_b = self.projector(h_a), self.projector(h_b)  # [B, P] each
        ids = getattr(view_a, "idx", None)
        if ids is not None and getattr(self.loss_fn, "uses_ids", False):
            # Dataset indices: copies of one crystal (DistributedSampler padding) are not negatives.
            contrastive = self.loss_fn(z_a, z_b, ids=ids.view(-1))  # ids [B]
        else:
            contrastive = self.loss_fn(z_a, z_b)
        loss = objectives["contrastive"] * contrastive
        batch_size = view_a.num_graphs
        positive, negative = positive_negative_similarity(z_a.detach(), z_b.detach())
        metrics = {
            f"{stage}/contrastive_loss": contrastive,
            f"{stage}/sim_pos": positive,
            f"{stage}/sim_neg": negative,
            f"{stage}/alignment": alignment(z_a.detach(), z_b.detach()),
            f"{stage}/uniformity": uniformity(z_a.detach()),
            f"{stage}/embedding_std": embedding_std(h_a.detach()),
        }
        if denoise["weight"] > 0:
            predicted = self.displacement_head(nodes_b, view_b)  # [N_b, 3]
            term = denoising_loss(predicted, noise, denoise["sigma"])
            loss = loss + denoise["weight"] * term
            metrics[f"{stage}/denoising_loss"] = term
        if masking["weight"] > 0:
            logits = self.species_head(nodes_a.index_select(0, masked))  # [M, C]
            term = masked_species_loss(logits, species)
            loss = loss + masking["weight"] * term
            metrics[f"{stage}/masking_loss"] = term
            metrics[f"{stage}/masking_accuracy"] = (logits.argmax(-1) == species).float().mean()
        metrics[f"{stage}/loss"] = loss
        self.log_dict(metrics, batch_size=batch_size, on_epoch=True, sync_dist=stage != "train")
        self.log(
            f"{stage}_loss",
            loss,
            batch_size=batch_size,
            on_epoch=True,
            prog_bar=True,
            sync_dist=stage != "train",
        )
        temperature = getattr(self.loss_fn, "temperature", None)
        if isinstance(temperature, Tensor):
            self.log(f"{stage}/temperature", temperature.detach(), batch_size=batch_size)
        return loss

    @classmethod
    def run_setup(cls, cfg) -> tuple[ContrastiveTask, dict]:
        """Build the module from a run config; the data module gets the two-view transform."""
        from hydra.utils import instantiate
        from omegaconf import OmegaConf, open_dict

        task_cfg, _ = run_arguments(cfg)  # pretraining starts fresh
        objectives = plain(cfg.objectives) if cfg.get("objectives") is not None else None
        module = cls(encoder=plain(cfg.encoder), loss=plain(cfg.loss), objectives=objectives, **task_cfg)
        if OmegaConf.select(cfg, "data.cutoff") is None:  # null: the encoder's own, for the views too
            with open_dict(cfg):
                cfg.data.cutoff = module.encoder.cutoff
        augment = plain(cfg.augment)
        on_device = bool(augment.pop("on_device", False))
        view_transform = instantiate(augment)
        if on_device:  # geometry and neighbour search on the batch's device; chemistry stays per item
            view_transform = BatchedViews.from_two_views(view_transform)
        # every contrastive loss compares the crystals of a batch: a last batch of one is dropped
        return module, {"view_transform": view_transform, "min_batch_size": MIN_BATCH}
