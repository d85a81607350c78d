"""Contrastive pretraining: encoder + projector trained on two augmented views of each crystal."""

from __future__ import annotations

from torch import Tensor

from contrast.losses import alignment, embedding_std, positive_negative_similarity, uniformity
from contrast.tasks.base import TaskModule, build, plain


class ContrastiveTask(TaskModule):
    """Self-supervised pretraining of a crystal encoder.

    Args:
        encoder: ``_target_`` config of a :class:`contrast.nn.base.CrystalEncoder`.
        projector: ``_target_`` config of the projection head (``in_dim`` is filled in).
        loss: ``_target_`` config of a loss module taking ``(z_a [B, P], z_b [B, P])``.
        optimizer: ``_target_`` config of a torch optimiser (``params`` is filled in).
        scheduler: ``{"warmup_epochs", "min_lr_ratio"}`` for warm-up + cosine per step, or None.
        task: the task name, stored so loaders know what the checkpoint holds.
    """

    def __init__(
        self,
        encoder: dict,
        projector: dict,
        loss: dict,
        optimizer: dict,
        scheduler: dict | None = None,
        task: str = "contrastive",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = build(encoder)
        self.projector = build(projector, in_dim=self.encoder.embedding_dim)
        self.loss_fn = build(loss)
        self.optimizer_config = optimizer
        self.scheduler_config = scheduler

    def forward(self, batch) -> Tensor:
        """Graph embeddings [B, D] (what probes and ``contrast.embed`` use)."""
        return self.encoder.embed(batch)

    def _step(self, views, stage: str) -> Tensor:
        view_a, view_b = views
        h_a, h_b = self.encoder.embed(view_a), self.encoder.embed(view_b)  # [B, D] each
        z_a, z_b = self.projector(h_a), self.projector(h_b)  # [B, P] each
        loss = self.loss_fn(z_a, z_b)
        batch_size = view_a.num_graphs
        positive, negative = positive_negative_similarity(z_a.detach(), z_b.detach())
        metrics = {
            f"{stage}/loss": loss,
            f"{stage}/sim_pos": positive,
            f"{stage}/sim_neg": negative,
            f"{stage}/alignment": alignment(z_a.detach(), z_b.detach()),
            f"{stage}/uniformity": uniformity(z_a.detach()),
            f"{stage}/embedding_std": embedding_std(h_a.detach()),
        }
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

        task_cfg = plain(cfg.task)
        task_cfg.pop("_target_")
        module = cls(encoder=plain(cfg.encoder), loss=plain(cfg.loss), **task_cfg)
        return module, {"view_transform": instantiate(cfg.augment)}
