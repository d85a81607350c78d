"""contrast: self-supervised contrastive representations of periodic crystals.

Public API (re-exported lazily so ``import contrast`` stays fast)::

    g    = contrast.structure_to_graph(structure, cutoff=5.0)
    ds   = contrast.load_dataset(path, cutoff=5.0, targets=[...])
    enc  = contrast.load_encoder(checkpoint_path)
    emb  = contrast.embed(enc, structures, batch_size=64)
    calc = contrast.load_calculator(checkpoint_path)
    cards = contrast.pretrained_models()      # encoders shipped in the package; load_encoder(name) loads one
"""

from __future__ import annotations

import importlib
from pathlib import Path

__version__ = "0.1.0"

# The Hydra configs travel inside the package, so every command runs from any folder after any install.
CONFIG_DIR = Path(__file__).resolve().parent / "conf"

_EXPORTS = {
    "structure_to_graph": "contrast.graph.convert",
    "structures_to_graphs": "contrast.graph.convert",
    "StructureError": "contrast.graph.convert",
    "load_dataset": "contrast.data.dataset",
    "CrystalDataset": "contrast.data.dataset",
    "load_encoder": "contrast.pretrained",
    "embed": "contrast.pretrained",
    "load_calculator": "contrast.pretrained",
    "pretrained_models": "contrast.pretrained",
    "embed_file": "contrast.embeddings.export",
    "read_embeddings": "contrast.embeddings.files",
    "neighbours": "contrast.embeddings.search",
    "run_training": "contrast.cli.train",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'contrast' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
