"""Starting a task from a pretrained encoder: a ``contrast`` checkpoint of any task, or a shipped encoder's
name, read through the allow-listed checkpoint reader."""

from __future__ import annotations

import torch
from torch import nn


def pretrained_encoder(path: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """The encoder config and weights of a ``contrast`` checkpoint (any task) or of a shipped encoder's name,
    for a task to build and load.

    Raises:
        CheckpointError: naming the file, when it is not a readable ``contrast`` checkpoint.
    """
    from contrast.pretrained.checkpoint import encoder_config_and_weights, read_checkpoint
    from contrast.pretrained.loading import checkpoint_path

    path = checkpoint_path(path)  # a file, or the name of a shipped encoder
    return encoder_config_and_weights(read_checkpoint(path), source=path)


def load_encoder_weights(encoder: nn.Module, weights: dict[str, torch.Tensor], source: str) -> None:
    """Load pretrained weights into a freshly built encoder (strict), with the file named on a mismatch."""
    from contrast.pretrained.checkpoint import CheckpointError

    try:
        encoder.load_state_dict(weights, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"encoder weights do not fit: {error}", source) from None


def run_arguments(cfg) -> tuple[dict, str | None]:
    """The task's keyword arguments from a run config's ``task`` group (without ``_target_`` and
    ``checkpoint``) and the checkpoint it starts from (None when it starts fresh)."""
    from contrast.tasks.base import plain

    arguments = plain(cfg.task)
    arguments.pop("_target_", None)
    checkpoint = arguments.pop("checkpoint", None)
    return arguments, (str(checkpoint) if checkpoint else None)


def starting_encoder(cfg, checkpoint: str | None) -> tuple[dict, dict[str, torch.Tensor] | None]:
    """The encoder config and weights a run starts from: the checkpoint's (its architecture wins over the
    ``encoder`` group), else the run's ``encoder`` group and no weights (a fresh encoder)."""
    from contrast.tasks.base import plain

    if checkpoint:
        return pretrained_encoder(checkpoint)
    return plain(cfg.encoder), None
