"""Shared pieces of the augmentations: the probability gate, copying, and stochastic counts."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch_geometric.data import Data

from contrast.graph.convert import contract_data

# Fields that stop describing a view once its atoms move or change: the neighbour list (rebuilt by the
# pipeline) and the physical labels of the unperturbed structure. Views are for self-supervision only.
STALE_FIELDS = ("edge_index", "cell_shift", "edge_attr", "energy", "forces", "stress")


def check_probability(p: float) -> float:
    """Validate an application probability."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability p must lie in [0, 1], got {p}")
    return float(p)


def check_fraction(fraction: float, name: str = "fraction") -> float:
    """Validate a fraction of sites, edges or atoms."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {fraction}")
    return float(fraction)


def fires(p: float, generator: torch.Generator) -> bool:
    """Draw whether a transform with probability ``p`` applies (always consumes one draw)."""
    return bool(torch.rand((), generator=generator) < p)


def stochastic_count(fraction: float, total: int, generator: torch.Generator) -> int:
    """``floor(fraction * total + u)``, ``u ~ U[0, 1)``: an integer count with mean ``fraction * total``.

    Plain rounding would leave small cells (2-8 atoms) untouched by small fractions forever.
    """
    u = float(torch.rand((), generator=generator))
    return min(total, int(math.floor(fraction * total + u)))


def with_structure(data: Data, z: Tensor, pos: Tensor, cell: Tensor) -> Data:
    """A new ``Data`` with ``z`` [N'], ``pos`` [N', 3], ``cell`` [1, 3, 3] and the input's other attributes.

    The neighbour list and the physical labels (:data:`STALE_FIELDS`) are dropped; graph-level bookkeeping
    such as ``idx`` is copied unchanged. The input is not modified.
    """
    fields = {
        key: _copy(value)
        for key, value in data.items()
        if key not in STALE_FIELDS and key not in ("z", "pos", "cell", "num_nodes")
    }
    return contract_data(**fields, z=z, pos=pos, cell=cell, num_nodes=int(z.shape[0]))


def _copy(value):
    return value.clone() if isinstance(value, Tensor) else value


def format_repr(name: str, **params) -> str:
    """``Name(a=1, b=0.5)`` with parameters in the given order (deterministic)."""
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in params.items())})"
