"""Several pretraining sources in one run: one dataset over all of them, split source by source.

``data.sources`` names the files (``[{path: mp.extxyz.gz, name: mp, weight: 2.0}, {path: oqmd.extxyz.gz}]``).
Each is read with :func:`~contrast.data.dataset.load_dataset` and the run's cutoff, targets and error policy;
:class:`MultiSourceDataset` puts them one after the other. Its ids are always ``"<name>:<id>"``, so they are
unique across sources and a ``splits.json`` of a multi-source run names each structure with its source. How
often each source is drawn for training is the business of :class:`~contrast.data.sampling.SourceSampler`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torch_geometric.data import Data

from contrast.data.dataset import CrystalDataset, load_dataset
from contrast.data.splits import SPLIT_NAMES, composition_split, random_split

__all__ = [
    "MultiSourceDataset",
    "SourcePart",
    "load_sources",
    "parse_sources",
    "source_summary",
    "split_sources",
]

SPEC_KEYS = ("path", "source", "name", "weight", "max_structures")
ID_SEPARATOR = ":"


def parse_sources(sources: Sequence[Any]) -> list[dict[str, Any]]:
    """Check and complete the source entries of ``data.sources``.

    Each entry is a dict with ``path`` (or ``source``: anything :func:`load_dataset` reads), and optionally
    ``name`` (default: the file name up to its first dot), ``weight`` (default 1.0) and ``max_structures``
    (default: the run's). A bare path stands for ``{path: ...}``.

    Returns:
        ``[{"source", "name", "weight", "max_structures"}, ...]`` in the given order.

    Raises:
        ValueError: an unknown key, a missing path, a negative weight, or a name that is empty, repeated or
            holds ``":"``.
    """
    if not sources:
        raise ValueError("data.sources must list at least one source")
    parsed, names = [], set()
    for k, entry in enumerate(sources):
        entry = {"path": entry} if isinstance(entry, str | os.PathLike) else dict(entry)
        unknown = sorted(set(entry) - set(SPEC_KEYS))
        if unknown:
            raise ValueError(f"data.sources[{k}]: unknown keys {unknown} (known: {list(SPEC_KEYS)})")
        source = entry.get("path", entry.get("source"))
        if source is None:
            raise ValueError(f"data.sources[{k}] needs a path")
        name = entry.get("name")
        if name is None:
            if not isinstance(source, str | os.PathLike):
                raise ValueError(f"data.sources[{k}]: an in-memory source needs a name")
            name = Path(source).name.split(".")[0]
        name = str(name)
        if not name or ID_SEPARATOR in name or any(c in name for c in "*?[]/"):
            raise ValueError(f"data.sources[{k}]: give it a name without ':', '/' or glob characters")
        if name in names:
            raise ValueError(f"data.sources: two sources are named {name!r}; give each a distinct name")
        names.add(name)
        weight = float(entry.get("weight", 1.0))
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"data.sources[{k}] ({name}): weight must be finite and >= 0, got {weight}")
        parsed.append(
            {"source": source, "name": name, "weight": weight, "max_structures": entry.get("max_structures")}
        )
    return parsed


class MultiSourceDataset(Dataset):
    """Several :class:`CrystalDataset` one after the other; item ``i`` carries ``idx`` = ``i``.

    Args:
        datasets: one dataset per source, read with the same cutoff and targets.
        names: the sources' names.

    Attributes:
        ids: ``"<name>:<id>"`` for every structure [S] (unique across sources).
        formulas: reduced formulas [S].
        source_index: the source of every structure, [S] int64.
        offsets: the first global index of each source and the total, [K + 1] int64.
    """

    def __init__(self, datasets: Sequence[CrystalDataset], names: Sequence[str]):
        if len(datasets) != len(names) or not datasets:
            raise ValueError("MultiSourceDataset needs one name per dataset, and at least one dataset")
        self.datasets, self.names = list(datasets), [str(name) for name in names]
        sizes = np.array([len(ds) for ds in self.datasets], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.source_index = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
        self.ids = [f"{name}{ID_SEPARATOR}{i}" for name, ds in zip(self.names, self.datasets) for i in ds.ids]
        self.formulas = [formula for ds in self.datasets for formula in ds.formulas]
        self.target_names = list(self.datasets[0].target_names)
        self.cutoff = self.datasets[0].cutoff
        self.source = ", ".join(f"{name}={ds.source}" for name, ds in zip(self.names, self.datasets))
        self.skipped = [(f"{name}: {entry}", why) for name, ds in self.items() for entry, why in ds.skipped]

    def items(self) -> list[tuple[str, CrystalDataset]]:
        """``(name, dataset)`` of each source, in order."""
        return list(zip(self.names, self.datasets))

    @property
    def sizes(self) -> np.ndarray:
        """Structures per source, [K] int64."""
        return np.diff(self.offsets)

    def locate(self, index: int) -> tuple[int, int]:
        """``(source, position in that source)`` of global ``index``."""
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} structures")
        source = int(self.source_index[index])
        return source, index - int(self.offsets[source])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> Data:
        source, local = self.locate(index)
        data = self.datasets[source][local]
        data.idx = torch.tensor([int(self.offsets[source]) + local], dtype=torch.long)
        return data

    def structure(self, index: int):
        """Float64 arrays (``z``, ``pos``, ``cell``) of structure ``index``."""
        source, local = self.locate(index)
        return self.datasets[source].structure(local)

    def atoms(self, index: int):
        """Structure ``index`` as a periodic ``ase.Atoms``."""
        source, local = self.locate(index)
        return self.datasets[source].atoms(local)

    def num_atoms(self) -> np.ndarray:
        """Atoms per structure, [S] int64."""
        return np.concatenate([ds.num_atoms() for ds in self.datasets])

    def targets(self, name: str) -> np.ndarray:
        """All values of a graph-level target, [S, ...] float64."""
        return np.concatenate([ds.targets(name) for ds in self.datasets])

    def report(self) -> dict[str, Any]:
        """The data report of each source, by name."""
        return {name: ds.report() for name, ds in self.items()}

    def __repr__(self) -> str:
        parts = ", ".join(f"{name}: {len(ds)}" for name, ds in self.items())
        return f"MultiSourceDataset({len(self)} structures; {parts}; cutoff={self.cutoff})"


def load_sources(
    sources: Sequence[Any],
    report_dir: str | os.PathLike | None = None,
    max_structures: int | None = None,
    **load_options: Any,
) -> MultiSourceDataset:
    """Read every source of ``data.sources`` (see :func:`parse_sources`) into one dataset.

    Args:
        sources: the source entries.
        report_dir: each source's data report goes to ``<report_dir>/sources/<name>/`` (when one is written).
        max_structures: read at most this many structures of a source without its own ``max_structures``.
        **load_options: the run's other options for :func:`load_dataset` (``cutoff``, ``targets``, ...).
    """
    specs = parse_sources(sources)
    datasets = []
    for spec in specs:
        limit = spec["max_structures"] if spec["max_structures"] is not None else max_structures
        folder = None if report_dir is None else Path(report_dir) / "sources" / spec["name"]
        datasets.append(load_dataset(spec["source"], report_dir=folder, max_structures=limit, **load_options))
    return MultiSourceDataset(datasets, [spec["name"] for spec in specs])


def split_sources(
    dataset: MultiSourceDataset, split: str, fractions: Sequence[float], seed: int
) -> dict[str, list[int]]:
    """Split each source on its own with the same fractions and seed, and join the parts (global indices).

    Every source thus has its share in val and test. ``split="composition"`` keeps a reduced formula in one
    part across all sources: a formula already placed by an earlier source stays in that part.
    """
    if split not in ("random", "composition"):
        raise ValueError(f"split must be 'random' or 'composition' here, got {split!r}")
    parts: dict[str, list[int]] = {name: [] for name in SPLIT_NAMES}
    assigned: dict[str, str] = {}
    for k, source in enumerate(dataset.datasets):
        if split == "composition":
            local = composition_split(source.formulas, fractions, seed, assigned=assigned)
        else:
            local = random_split(len(source), fractions, seed)
        offset = int(dataset.offsets[k])
        for name in SPLIT_NAMES:
            parts[name].extend(offset + i for i in local[name])
    return parts


class SourcePart(Dataset):
    """Some structures of a :class:`MultiSourceDataset` (one part of a split).

    Index ``i + r * len(part)`` names position ``i`` as well: the
    :class:`~contrast.data.sampling.SourceSampler` yields a structure's ``r``-th repeat in an epoch that way,
    so a view transform wrapped around this part (seeded by the index) draws other views for each repeat.

    Attributes:
        indices: global indices of the part, [n] int64.
        sources: the source of each position, [n] int64.
    """

    def __init__(self, dataset: MultiSourceDataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.sources = dataset.source_index[self.indices] if len(self.indices) else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Data:
        return self.dataset[int(self.indices[int(index) % len(self.indices)])]

    def sizes(self) -> np.ndarray:
        """Structures of each source in this part, [K] int64."""
        return np.bincount(self.sources, minlength=len(self.dataset.names)).astype(np.int64)


def source_summary(
    dataset: MultiSourceDataset,
    splits: dict[str, Sequence[int]],
    weights: Sequence[float],
    probabilities: Sequence[float],
    drawn: dict[int, Sequence[int]],
) -> dict[str, dict[str, Any]]:
    """Per source: where it came from, its size and split sizes, weight, probability and training draws.

    Args:
        dataset: the run's dataset.
        splits: the run's split (global indices).
        weights: configured weights [K].
        probabilities: drawing probabilities [K].
        drawn: ``{epoch: structures drawn from each source [K]}`` over all ranks.
    """
    where = {part: dataset.source_index[np.asarray(splits[part], dtype=np.int64)] for part in SPLIT_NAMES}
    split_sizes = {part: np.bincount(where[part], minlength=len(weights)) for part in SPLIT_NAMES}
    summary = {}
    for k, (name, source) in enumerate(dataset.items()):
        per_epoch = {str(epoch): int(counts[k]) for epoch, counts in sorted(drawn.items())}
        summary[name] = {
            "path": source.source,
            "size": len(source),
            **{part: int(split_sizes[part][k]) for part in SPLIT_NAMES},
            "weight": float(weights[k]),
            "probability": float(probabilities[k]),
            "drawn": sum(per_epoch.values()),
            "drawn_per_epoch": per_epoch,
        }
    return summary
