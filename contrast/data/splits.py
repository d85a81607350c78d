"""Train/val/test splits: seeded random, grouped by composition, or read from a split file.

In memory a split is a dict ``{"train": [...], "val": [...], "test": [...]}`` of dataset positions. On disk
(:func:`save_split`) it names the structures by their ids (``CrystalDataset.ids``), which do not depend on the
cutoff, the error policy or the other entries, and records a fingerprint of the dataset it was made for::

    {"format": 2,
     "dataset": {"structures": 120, "ids_sha256": "..."},
     "train": [0, 3, ...], "val": [...], "test": [...],
     "ids": {"train": ["mp-1", "mp-7", ...], "val": [...], "test": [...]}}

The positions refer to that dataset only. :func:`load_split` and :func:`select_split` select by id, so a file
written by a run that skipped an entry picks the same structures in a dataset read with another skip policy
or cutoff, and a file naming structures that a dataset lacks is refused (or, for the leakage guard, the
missing ones are counted). Files of positions only (written before ids were recorded) are used only when
their positions cover exactly the dataset's structures.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "SPLIT_NAMES",
    "random_split",
    "composition_split",
    "group_split",
    "block_split",
    "dataset_fingerprint",
    "load_split",
    "save_split",
    "select_split",
]

log = logging.getLogger(__name__)
FORMAT = 2

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
    formulas: Sequence[str],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    assigned: dict[str, str] | None = None,
) -> dict[str, list[int]]:
    """Group split: every structure with the same reduced formula lands in the same part.

    Groups are shuffled with ``seed`` and each goes to the part furthest below its target size, so the sizes
    follow ``fractions`` as closely as whole groups allow.

    Args:
        formulas: reduced formula of each structure [S].
        fractions: train, val and test fractions.
        seed: shuffles the groups.
        assigned: ``{formula: part}`` fixed beforehand (e.g. by another dataset split in the same run): those
            groups go to their part and count towards its size. Updated in place with this split's groups.
    """
    fractions = _check_fractions(fractions)
    groups: dict[str, list[int]] = {}
    for index, formula in enumerate(formulas):
        groups.setdefault(formula, []).append(index)
    assigned = {} if assigned is None else assigned
    parts: list[list[int]] = [[], [], []]
    for formula in sorted(set(groups) & set(assigned)):
        parts[SPLIT_NAMES.index(assigned[formula])].extend(groups.pop(formula))
    names = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(names))
    targets = fractions * len(formulas)
    for k in order:
        members = groups[names[k]]
        deficit = targets - np.array([len(p) for p in parts])
        deficit[fractions == 0] = -np.inf  # an empty part stays empty
        part = int(np.argmax(deficit))
        parts[part].extend(members)
        assigned[names[k]] = SPLIT_NAMES[part]
    return {name: sorted(part) for name, part in zip(SPLIT_NAMES, parts)}


def group_split(
    groups: Sequence[str], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, list[int]]:
    """Every structure of one group (a trajectory, a kind of configuration) lands in the same part; the
    groups are dealt out as :func:`composition_split` deals out formulas."""
    return composition_split(groups, fractions, seed)


def block_split(
    groups: Sequence[str],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    block_size: int = 10,
    spread: bool = False,
) -> dict[str, list[int]]:
    """Contiguous blocks of each group go to one part each, so that no held-out structure has a neighbour
    from the same stretch of a trajectory in training.

    Within each group (one label for all structures makes one group), structures in reading order are cut
    into blocks of ``block_size``. Each group's blocks are shuffled and dealt out on their own: first one to
    each held-out part whose share of the group is at least one block, then each to the part furthest below
    its share, so every part holds a share of every group large enough to have one.

    Args:
        groups: each structure's group [S] (e.g. the ``group`` label of mlearn frames).
        fractions: train, val and test fractions.
        seed: shuffles the blocks.
        block_size: structures per block (consecutive frames of a trajectory are near copies).
        spread: pick each group's held-out blocks evenly along the group (systematic sampling from a seeded
            offset: ``round(fraction x blocks)`` blocks per held-out part, one block of the largest group when
            that gives a part none, at least one block of each group left for training) instead of at random,
            so that they cover every stretch of the file. For files whose frames carry no group, where kinds
            of frames follow each other (vacancies, then molecular dynamics, then strained cells), random
            blocks can all land in one kind.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    members: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    fractions = _check_fractions(fractions)
    held_out = [p for p in (1, 2) if fractions[p] > 0]  # val, test
    parts: list[list[int]] = [[], [], []]
    grouped = {
        group: [indices[start : start + block_size] for start in range(0, len(indices), block_size)]
        for group, indices in sorted(members.items())
    }
    if spread:
        sizes = {group: len(blocks) for group, blocks in grouped.items()}
        counts = _spread_counts(sizes, fractions, held_out)
        for k, (group, blocks) in enumerate(grouped.items()):
            held = _spread_blocks(len(blocks), counts[group], [seed, k])
            for b, block in enumerate(blocks):
                parts[held.get(b, 0)].extend(block)
        return {name: sorted(part) for name, part in zip(SPLIT_NAMES, parts)}
    for k, blocks in enumerate(grouped.values()):
        order = np.random.default_rng([seed, k]).permutation(len(blocks))
        counts = np.zeros(3)
        targets = fractions * sum(len(block) for block in blocks)
        owed = [p for p in held_out if fractions[p] * len(blocks) >= 1]  # a share of at least one block
        for rank, b in enumerate(order):
            if rank < len(owed):
                part = owed[rank]
            else:
                deficit = targets - counts
                deficit[fractions == 0] = -np.inf
                part = int(np.argmax(deficit))
            parts[part].extend(blocks[b])
            counts[part] += len(blocks[b])
    return {name: sorted(part) for name, part in zip(SPLIT_NAMES, parts)}


def _spread_counts(
    n_blocks: dict[str, int], fractions: np.ndarray, held_out: list[int]
) -> dict[str, dict[int, int]]:
    """Held-out blocks per group and part: ``round(fraction x blocks)``, keeping at least one block of every
    group in training; a held-out part that would get none at all takes one block of the largest group."""
    counts = {}
    for group, n in n_blocks.items():
        room, counts[group] = n - 1, {}
        for p in held_out:
            counts[group][p] = min(int(round(fractions[p] * n)), room)
            room -= counts[group][p]
    for p in held_out:
        if not any(c[p] for c in counts.values()):
            roomy = [g for g, n in n_blocks.items() if n - 1 - sum(counts[g].values()) > 0]
            if roomy:
                counts[max(roomy, key=lambda g: n_blocks[g])][p] = 1
    return counts


def _spread_blocks(n_blocks: int, counts: dict[int, int], seed) -> dict[int, int]:
    """The held-out blocks of one group and their parts (1 val, 2 test): ``counts`` blocks evenly spaced along
    the group at ``floor((offset + j) x n_blocks / total)`` (a seeded offset), the parts interleaved in a
    seeded order; every other block trains."""
    rng = np.random.default_rng(seed)
    total = sum(counts.values())
    chosen = np.floor((rng.random() + np.arange(total)) * n_blocks / max(total, 1)).astype(int)
    labels = rng.permutation([p for p, count in counts.items() for _ in range(count)])
    return dict(zip(chosen.tolist(), labels.tolist()))


def nested_subsets(pool: Sequence[int], fractions: Sequence[float], seed: int) -> dict[float, np.ndarray]:
    """Seeded nested subsets of ``pool``: each fraction's subset (sorted, at least 2 members) contains every
    smaller fraction's, so a learning curve adds data rather than redrawing it."""
    order = np.random.default_rng([seed, 7]).permutation(np.asarray(pool))
    return {f: np.sort(order[: max(2, int(round(f * len(order))))]) for f in fractions}


def dataset_fingerprint(ids: Sequence[str]) -> dict[str, Any]:
    """``{"structures": n, "ids_sha256": hex}``: identifies a dataset by its ids in order."""
    digest = hashlib.sha256("\n".join(map(str, ids)).encode()).hexdigest()
    return {"structures": len(ids), "ids_sha256": digest}


def save_split(split: dict[str, list[int]], path: str | os.PathLike, ids: Sequence[str]) -> None:
    """Write a split of the dataset with ``ids`` [S]: positions, the ids of each part and the fingerprint."""
    ids = list(ids)
    positions = {name: [int(i) for i in split[name]] for name in SPLIT_NAMES}
    record = {
        "format": FORMAT,
        "dataset": dataset_fingerprint(ids),
        **positions,
        "ids": {name: [str(ids[i]) for i in indices] for name, indices in positions.items()},
    }
    with open(path, "w") as handle:
        json.dump(record, handle)


def select_split(
    path: str | os.PathLike, ids: Sequence[str]
) -> tuple[dict[str, list[int]], dict[str, list[str]]]:
    """Map a split file onto the dataset with ``ids`` [S], by structure id.

    Returns:
        ``(positions, missing)``: per part, the sorted positions in this dataset of the file's structures, and
        the file's ids that this dataset lacks.

    Raises:
        ValueError: naming the file and what is wrong: a malformed file, repeated ids in the dataset, or a
            positions-only file that does not cover exactly this dataset's structures.
    """
    ids = [str(i) for i in ids]
    record = _read(path)
    if "ids" not in record:
        return _legacy_positions(path, record, len(ids)), {name: [] for name in SPLIT_NAMES}
    where = {entry_id: position for position, entry_id in enumerate(ids)}
    if len(where) != len(ids):
        repeated = next(entry_id for k, entry_id in enumerate(ids) if where[entry_id] != k)
        raise ValueError(f"split file {path}: the dataset's ids are not unique (e.g. {repeated!r})")
    positions, missing = {}, {}
    for name in SPLIT_NAMES:
        part = record["ids"][name]
        positions[name] = sorted(where[i] for i in part if i in where)
        missing[name] = [i for i in part if i not in where]
    return positions, missing


def load_split(path: str | os.PathLike, ids: Sequence[str] | None = None) -> dict[str, list[int]]:
    """Read a split file: positions, per part, in the dataset with ``ids`` [S] (as stored when None).

    Raises:
        ValueError: naming the file and what is wrong, e.g. structures of the file that this dataset lacks
            (with both datasets' fingerprints).
    """
    if ids is None:
        record = _read(path)
        return {name: record[name] for name in SPLIT_NAMES}
    positions, missing = select_split(path, ids)
    absent = [i for name in SPLIT_NAMES for i in missing[name]]
    if absent:
        record = _read(path)
        wrote, here = record.get("dataset", {}), dataset_fingerprint([str(i) for i in ids])
        total = sum(len(record["ids"][name]) for name in SPLIT_NAMES)
        raise ValueError(
            f"split file {path} does not match this dataset: {len(absent)} of its {total} structures are not "
            f"in it (e.g. {absent[:3]}); the file was written for {wrote.get('structures')} structures (ids "
            f"sha256 {str(wrote.get('ids_sha256'))[:12]}), this dataset has {here['structures']} (ids sha256 "
            f"{here['ids_sha256'][:12]}). Read the same source with the structure limit of the run that "
            "wrote it (entries skipped here as bad input cannot be selected; see the data report), or split "
            "again."
        )
    return positions


def _read(path: str | os.PathLike) -> dict[str, Any]:
    """The checked contents of a split file (positions-only files included)."""
    try:
        with open(path) as handle:
            raw = json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"split file {path}: not JSON ({error})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"split file {path}: expected an object with parts {list(SPLIT_NAMES)}")
    missing = [name for name in SPLIT_NAMES if name not in raw]
    if missing:
        raise ValueError(f"split file {path}: missing parts {missing}")
    record = dict(raw)
    seen: set[int] = set()
    for name in SPLIT_NAMES:
        record[name] = [int(i) for i in raw[name]]
        if any(i < 0 for i in record[name]):
            raise ValueError(f"split file {path}: part {name!r} has negative positions")
        if seen.intersection(record[name]) or len(set(record[name])) != len(record[name]):
            raise ValueError(f"split file {path}: part {name!r} repeats indices")
        seen.update(record[name])
    if "ids" in raw:
        parts = raw["ids"]
        if not isinstance(parts, dict) or any(name not in parts for name in SPLIT_NAMES):
            raise ValueError(f"split file {path}: 'ids' must hold the parts {list(SPLIT_NAMES)}")
        record["ids"] = {name: [str(i) for i in parts[name]] for name in SPLIT_NAMES}
        named: set[str] = set()
        for name in SPLIT_NAMES:
            if len(record["ids"][name]) != len(record[name]):
                raise ValueError(
                    f"split file {path}: part {name!r} has {len(record[name])} positions but "
                    f"{len(record['ids'][name])} ids"
                )
            if named.intersection(record["ids"][name]) or len(set(record["ids"][name])) != len(record[name]):
                raise ValueError(f"split file {path}: part {name!r} repeats ids")
            named.update(record["ids"][name])
    return record


def _legacy_positions(path: str | os.PathLike, record: dict[str, Any], n: int) -> dict[str, list[int]]:
    """Positions of a file without ids, used only when they cover exactly the ``n`` structures."""
    positions = {name: record[name] for name in SPLIT_NAMES}
    every = sorted(i for part in positions.values() for i in part)
    if every and every[-1] >= n:
        raise ValueError(f"split file {path}: positions outside 0..{n - 1} (the dataset has {n} structures)")
    if every != list(range(n)):
        raise ValueError(
            f"split file {path} holds positions only (no structure ids) and they cover {len(every)} of the "
            f"{n} structures of this dataset, so they may point at other structures than the run that wrote "
            "it split. Split again, or re-create the file with this version (it records ids)."
        )
    log.warning(
        "split file %s holds positions only (no structure ids); used because it covers exactly the %d "
        "structures of this dataset",
        path,
        n,
    )
    return positions
