"""Pretrained models: the encoders shipped in the package (weights and cards), safe checkpoint reading (one
allow-listed builder), ``load_encoder``, ``embed``, ``load_energy_model`` and ``load_calculator``.

Never imports Lightning or Hydra, so a notebook that only embeds stays light.
"""

from contrast.pretrained.loading import (
    check_graph_cutoff,
    checkpoint_path,
    embed,
    load_calculator,
    load_encoder,
    load_energy_model,
    pretrained_models,
)

__all__ = [
    "check_graph_cutoff",
    "checkpoint_path",
    "embed",
    "load_calculator",
    "load_encoder",
    "load_energy_model",
    "pretrained_models",
]
