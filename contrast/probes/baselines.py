"""Baselines a learned embedding must beat: composition-only features and a randomly initialised encoder."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from contrast.probes.common import ProbeResult
from contrast.probes.linear import fit_linear_probe

__all__ = [
    "NUM_ELEMENTS",
    "atomic_numbers",
    "composition_baseline",
    "composition_features",
    "random_encoder_like",
]

NUM_ELEMENTS = 118


def atomic_numbers(item: Any) -> np.ndarray:
    """Atomic numbers [N] of a ``Data`` (``.z``), ``ase.Atoms``, pymatgen ``Structure`` or integer array."""
    if hasattr(item, "get_atomic_numbers"):  # ase.Atoms
        z = item.get_atomic_numbers()
    elif hasattr(item, "atomic_numbers"):  # pymatgen Structure / Molecule
        z = item.atomic_numbers
    elif hasattr(item, "z") and not isinstance(item, np.ndarray):  # torch_geometric Data
        z = item.z
    else:
        z = item
    if isinstance(z, torch.Tensor):
        z = z.detach().cpu().numpy()
    return np.asarray(z).reshape(-1)


def composition_features(items: Iterable[Any]) -> np.ndarray:
    """Element-fraction vectors: column ``Z - 1`` holds the fraction of atoms with atomic number ``Z``.

    Args:
        items: structures, graphs or atomic-number arrays (see :func:`atomic_numbers`).

    Returns:
        Features [n, 118], each row summing to one; invariant to supercells and atom order.

    Raises:
        ValueError: an entry with no atoms or an atomic number outside 1..118 (naming the entry).
    """
    rows = []
    for index, item in enumerate(items):
        z = atomic_numbers(item)
        if z.size == 0:
            raise ValueError(f"entry {index}: no atoms")
        if not np.issubdtype(z.dtype, np.integer) and not np.array_equal(z, np.round(z)):
            raise ValueError(f"entry {index}: atomic numbers are not integers")
        z = z.astype(np.int64)
        if z.min() < 1 or z.max() > NUM_ELEMENTS:
            raise ValueError(f"entry {index}: atomic number outside 1..{NUM_ELEMENTS}")
        rows.append(np.bincount(z - 1, minlength=NUM_ELEMENTS) / z.size)
    return np.stack(rows) if rows else np.zeros((0, NUM_ELEMENTS))


def composition_baseline(
    train_items: Sequence[Any],
    y_train: np.ndarray,
    test_items: Sequence[Any],
    task: str = "regression",
    seed: int = 0,
) -> ProbeResult:
    """The linear probe on composition features instead of embeddings (what structure adds beyond formula)."""
    return fit_linear_probe(
        composition_features(train_items), y_train, composition_features(test_items), task=task, seed=seed
    )


def _redraw(parameter: torch.Tensor) -> None:
    """Fallback initialisation, the same as ``nn.Linear``'s, for parameters no ``reset_parameters`` covers."""
    if parameter.dim() >= 2:
        nn.init.kaiming_uniform_(parameter, a=math.sqrt(5))
    else:
        bound = 1.0 / math.sqrt(max(1, parameter.numel()))
        nn.init.uniform_(parameter, -bound, bound)


def random_encoder_like(encoder: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``encoder`` with the same architecture and freshly initialised weights.

    Every submodule with ``reset_parameters`` is reset under ``torch.manual_seed(seed)`` (the global RNG state
    is restored afterwards). A parameter that is still bit-identical to the trained one afterwards and is not
    constant (which a zero or one init would legitimately reproduce) belongs to a module without
    ``reset_parameters``; it is redrawn with ``nn.Linear``'s init and a warning names it, so no trained
    weight ever leaks into the baseline. Buffers (fixed basis centres, normalisation constants) are kept.

    Args:
        encoder: the trained encoder (left untouched).
        seed: seed of the fresh initialisation.

    Returns:
        The new encoder, in the same train/eval mode as ``encoder``.
    """
    fresh = copy.deepcopy(encoder)
    trained = {name: p.detach().clone() for name, p in encoder.named_parameters()}
    redrawn = []
    devices = sorted({p.device.index or 0 for p in fresh.parameters() if p.is_cuda})
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        for module in fresh.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
        for name, parameter in fresh.named_parameters():
            same = torch.equal(parameter, trained[name])
            constant = parameter.numel() > 0 and bool((parameter == parameter.reshape(-1)[0]).all())
            if same and not constant:
                _redraw(parameter)
                redrawn.append(name)
    if redrawn:
        warnings.warn(f"no reset_parameters covers {redrawn}; redrawn with the nn.Linear init", stacklevel=2)
    return fresh.train(encoder.training)
