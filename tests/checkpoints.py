"""A freshly initialised contrastive checkpoint for tests that need a checkpoint file but no training."""

from __future__ import annotations

from pathlib import Path

import torch

from contrast.tasks.contrastive import ContrastiveTask


def untrained_checkpoint(path: Path, encoder: dict, seed: int = 0) -> ContrastiveTask:
    """Write a ``ContrastiveTask`` with ``encoder`` (seeded, untrained) to ``path`` as Lightning would, and
    return the module."""
    torch.manual_seed(seed)
    module = ContrastiveTask(
        encoder=encoder,
        projector={"_target_": "contrast.nn.heads.ProjectionHead", "hidden_dim": 8, "out_dim": 4},
        loss={"_target_": "contrast.losses.InfoNCELoss", "temperature": 0.1},
        optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-3},
    )
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return module
