"""Baselines a learned embedding must beat: composition-only features and a freshly initialised encoder."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from contrast.data.composition import (
    ELEMENT_STATISTICS_NAMES,
    atomic_numbers,
    element_fractions,
    element_statistics,
)
from contrast.evaluation.probes.common import ProbeResult
from contrast.evaluation.probes.knn import fit_knn_probe
from contrast.evaluation.probes.linear import fit_linear_probe

__all__ = [
    "COMPOSITION_FEATURES",
    "ELEMENT_STATISTICS_NAMES",
    "KNN_NORMALISE",
    "atomic_numbers",
    "composition_baseline",
    "composition_features",
    "element_fractions",
    "element_statistics",
    "random_encoder_like",
]

COMPOSITION_FEATURES = ("fractions", "statistics")

# How the kNN probe treats the rows of each composition feature set. Fractions are sparse and sum to one:
# standardising blows up the columns of rare elements, so one atom of a rare element decides the neighbours;
# unit-norm rows rank neighbours by the cosine of their compositions. Statistics are dense, in mixed units
# (K, u, Å): standardise them, like embeddings.
KNN_NORMALISE = {"fractions": "l2", "statistics": "standard"}


def composition_features(items: Iterable[Any], features: str = "fractions") -> np.ndarray:
    """A composition-only feature set of each structure.

    Args:
        items: structures, graphs or atomic-number arrays (see
            :func:`contrast.data.composition.atomic_numbers`).
        features: ``"fractions"``: element fractions [n, 119], column ``Z`` for element ``Z`` (column 0, no
            element, is zero), see :func:`contrast.data.composition.element_fractions`; ``"statistics"``:
            Magpie-style element-property statistics [n, 64] named by ``ELEMENT_STATISTICS_NAMES``, see
            :func:`contrast.data.composition.element_statistics`.

    Returns:
        Features [n, F], finite and invariant to supercells and atom order.

    Raises:
        ValueError: an unknown feature set, or a bad entry (no atoms, atomic number outside 1..118), named.
    """
    if features == "fractions":
        return element_fractions(items)
    if features == "statistics":
        return element_statistics(items)
    raise ValueError(f"features must be one of {COMPOSITION_FEATURES}, got {features!r}")


def composition_baseline(
    train_items: Sequence[Any],
    y_train: np.ndarray,
    test_items: Sequence[Any],
    task: str = "regression",
    seed: int = 0,
    features: str = "fractions",
    probe: str = "linear",
) -> ProbeResult:
    """A probe on composition features instead of embeddings (what structure adds beyond the formula).

    Args:
        train_items: training structures, graphs or atomic-number arrays.
        y_train: training targets [n].
        test_items: test structures.
        task: ``"regression"`` or ``"classification"``.
        seed: seeds the probe's folds.
        features: ``"fractions"`` or ``"statistics"`` (see :func:`composition_features`).
        probe: ``"linear"`` (ridge or logistic on standardised features) or ``"knn"`` (rows treated as
            :data:`KNN_NORMALISE` says for the feature set).

    Returns:
        The probe's :class:`ProbeResult` on the test structures.
    """
    x_train = composition_features(train_items, features)
    x_test = composition_features(test_items, features)
    if probe == "linear":
        return fit_linear_probe(x_train, y_train, x_test, task=task, seed=seed)
    if probe == "knn":
        return fit_knn_probe(
            x_train, y_train, x_test, task=task, seed=seed, normalise=KNN_NORMALISE[features]
        )
    raise ValueError(f"probe must be 'linear' or 'knn', got {probe!r}")


def _redraw(parameter: torch.Tensor) -> None:
    """Fallback initialisation, the same as ``nn.Linear``'s, for parameters no ``reset_parameters`` covers."""
    if parameter.dim() >= 2:
        nn.init.kaiming_uniform_(parameter, a=math.sqrt(5))
    else:
        bound = 1.0 / math.sqrt(max(1, parameter.numel()))
        nn.init.uniform_(parameter, -bound, bound)


def random_encoder_like(encoder: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``encoder`` with the same architecture and freshly initialised weights.

    Every floating-point parameter of the copy is first set to NaN; then every submodule's
    ``reset_parameters`` runs under ``torch.manual_seed(seed)`` (the global RNG state is restored afterwards).
    A parameter with any NaN left belongs to no ``reset_parameters``; it is redrawn with ``nn.Linear``'s init
    and a warning names it. So no trained value survives, also not in parameters whose init is a constant:
    LayerNorm weights and biases come back as ones and zeros, their init, not as trained values. Buffers
    (fixed basis centres, normalisation constants) are kept.

    An encoder that knows its own untrained state (an ``untrained(seed)`` method, as the adapters of
    foundation models have: their basis frequencies are parameters with a fixed init) builds it itself.

    Args:
        encoder: the trained encoder (left untouched).
        seed: seed of the fresh initialisation.

    Returns:
        The new encoder, in the same train/eval mode as ``encoder``.
    """
    if hasattr(encoder, "untrained"):
        fresh = encoder.untrained(seed)
        return fresh.train(encoder.training)
    fresh = copy.deepcopy(encoder)
    parameters = [(name, p) for name, p in fresh.named_parameters() if p.is_floating_point()]
    redrawn = []
    devices = sorted({p.device.index or 0 for p in fresh.parameters() if p.is_cuda})
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        for _, parameter in parameters:
            parameter.fill_(math.nan)  # a sentinel no init produces: what stays NaN was not reset
        for module in fresh.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
        for name, parameter in parameters:
            if torch.isnan(parameter).any():
                _redraw(parameter)
                redrawn.append(name)
    if redrawn:
        warnings.warn(f"no reset_parameters covers {redrawn}; redrawn with the nn.Linear init", stacklevel=2)
    return fresh.train(encoder.training)
