"""Train/val/test splits: seeded random, grouped by composition, or read from an indices file.

A split is a dict ``{"train": [...], "val": [...], "test": [...]}`` of dataset indices, the same layout as the
JSON file :func:`save_split` writes and :func:`load_split` reads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

__all__ = ["SPLIT_NAMES", "random_split", "composition_split", "load_split", "save_split"]

SPLIT_NAMES = ("train", "val", "test")


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    fractions = np.asarray(fractions, dtype=np.float64)
    if fractions.shape != (3,) or (fractions < 0).any() or not np.isclose(fractions.sum(), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {list(fractions)}")
    return fractions


def random_split(n: int, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> dict[str, list[int]]:
    """Seeded random split of ``range(n)``; sizes round down for val and test, the rest is train."""
    fractions = _check_fractions(fractions)
    order = np.random.default_rng(seed).permutation(n)
    n_val, n_test = int(fractions[1] * n), int(fractions[2] * n)
    n_train = n - n_val - n_test
    parts = np.split(order, [n_train, n_train + n_val])
    return {name: sorted(part.tolist()) for name, part in zip(SPLIT_NAMES, parts)}


def composition_split(
    formulas: Sequence[str], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, list[int]]:
    """Group split: every structure with the same reduced formula lands in the same part.

    Groups are shuffled with ``seed`` and each goes to the part furthest below its target size, so the sizes
    follow ``fractions`` as closely as whole groups allow.
    """
    fractions = _check_fractions(fractions)
    groups: dict[str, list[int]] = {}
    for index, formula in enumerate(formulas):
        groups.setdefault(formula, []).append(index)
    names = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(names))
    targets = fractions * len(formulas)
    parts: list[list[int]] = [[], [], []]
    for k in order:
        members = groups[names[k]]
        deficit = targets - np.array([len(p) for p in parts])
        deficit[fractions == 0] = -np.inf  # an empty part stays empty
        parts[int(np.argmax(deficit))].extend(members)
    return {name: sorted(part) for name, part in zip(SPLIT_NAMES, parts)}


def load_split(path: str | os.PathLike, n: int | None = None) -> dict[str, list[int]]:
    """Read a JSON indices file; checks integer indices in ``range(n)`` and no index in two parts.

    Raises:
        ValueError: naming the file and what is wrong.
    """
    with open(path) as handle:
        raw = json.load(handle)
    missing = [name for name in SPLIT_NAMES if name not in raw]
    if missing:
        raise ValueError(f"split file {path}: missing parts {missing}")
    split = {name: [int(i) for i in raw[name]] for name in SPLIT_NAMES}
    seen: set[int] = set()
    for name, indices in split.items():
        if n is not None and any(i < 0 or i >= n for i in indices):
            raise ValueError(f"split file {path}: part {name!r} has indices outside 0..{n - 1}")
        if seen.intersection(indices) or len(set(indices)) != len(indices):
            raise ValueError(f"split file {path}: part {name!r} repeats indices")
        seen.update(indices)
    return split


def save_split(split: dict[str, list[int]], path: str | os.PathLike) -> None:
    """Write a split as JSON ``{"train": [...], "val": [...], "test": [...]}``."""
    with open(path, "w") as handle:
        json.dump({name: [int(i) for i in split[name]] for name in SPLIT_NAMES}, handle)
