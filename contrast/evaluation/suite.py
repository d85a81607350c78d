"""Probe suites: the tasks of ``conf/suite/*.yaml``, their labelled structures and their fixed splits.

A task names a file (relative to the suite's ``data_dir``), a graph-level label, which frames carry it and how
the labelled frames are split::

    mp_e_form:
      file: mp_train.extxyz.gz
      target: e_form_per_atom   # a number in each frame's info (or the calculator's energy)
      per_atom: false           # true: divide the label by the number of atoms
      select: null              # all frames are labelled; {split: val}: those with info["split"] == "val"
      split: {kind: composition, fractions: [0.8, 0.1, 0.1], seed: 0}
      max_train: 8000           # seeded subsample of the train part (null: all of it)
      max_test: 2000            # seeded subsample of the test part

Split kinds: ``composition`` (:func:`contrast.data.splits.composition_split` over the labelled structures'
reduced formulas, so no formula is in two parts) and ``random`` (:func:`contrast.data.splits.random_split`).
Probes train on the ``train`` part and are scored on the ``test`` part; ``val`` is left unused. Splits depend
on the task alone (its ``seed``), never on the encoder, so every encoder is scored on the same structures.

Graphs come from :func:`contrast.load_dataset` at the encoder's cutoff (cached after the first read), loaded
once per file with the targets of every task on it that uses all frames. A selecting task reads its key and
its label from the frames' extended-XYZ comment lines (ASE's parser), because those labels exist on some
frames only and string keys such as ``split`` are not dataset targets.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from contrast.data.dataset import CrystalDataset, load_dataset
from contrast.data.splits import composition_split, random_split

__all__ = ["LabelledGraphs", "SuiteData", "TaskGraphs", "TaskSpec", "frame_info", "parse_suite"]

SPLIT_KINDS = ("composition", "random")
SCORED_PARTS = ("test", "val")
TASK_KEYS = ("file", "target", "per_atom", "select", "split", "max_train", "max_test", "unit")
NOT_GRAPH_LEVEL = ("forces", "stress")
_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


@dataclass(frozen=True)
class TaskSpec:
    """One task of a suite (see the module docstring for the meaning of each field)."""

    name: str
    file: str
    target: str
    per_atom: bool = False
    select: tuple[tuple[str, str], ...] = ()
    split: str = "random"
    fractions: tuple[float, float, float] = (0.8, 0.0, 0.2)
    seed: int = 0
    max_train: int | None = None
    max_test: int | None = None
    unit: str = ""

    @property
    def label(self) -> str:
        """The name of the probed label (``energy_per_atom`` for ``energy`` with ``per_atom``)."""
        return f"{self.target}_per_atom" if self.per_atom else self.target

    @property
    def graphs_key(self) -> tuple:
        """Tasks with equal keys probe the same structures, so their graphs are embedded once."""
        return (self.file, self.select, self.split, self.fractions, self.seed, self.max_train, self.max_test)


def parse_suite(tasks: Mapping[str, Mapping[str, Any]]) -> list[TaskSpec]:
    """The suite's ``tasks`` mapping as :class:`TaskSpec` s, in order.

    Raises:
        ValueError: naming the task and what is wrong with its entry.
    """
    if not tasks:
        raise ValueError("the suite has no tasks")
    return [_parse_task(str(name), dict(entry or {})) for name, entry in tasks.items()]


def _parse_task(name: str, entry: dict[str, Any]) -> TaskSpec:
    unknown = sorted(set(entry) - set(TASK_KEYS))
    if unknown:
        raise ValueError(f"suite task {name}: unknown key(s) {unknown}; a task takes {list(TASK_KEYS)}")
    for key in ("file", "target"):
        if not entry.get(key):
            raise ValueError(f"suite task {name}: {key!r} is required")
    if entry["target"] in NOT_GRAPH_LEVEL:
        raise ValueError(f"suite task {name}: {entry['target']!r} is not a graph-level label")
    split = dict(entry.get("split") or {})
    kind = split.pop("kind", "random")
    if kind not in SPLIT_KINDS:
        raise ValueError(f"suite task {name}: split kind must be one of {SPLIT_KINDS}, got {kind!r}")
    fractions = tuple(float(f) for f in split.pop("fractions", (0.8, 0.0, 0.2)))
    if len(fractions) != 3 or min(fractions) < 0 or not math.isclose(sum(fractions), 1.0):
        raise ValueError(
            f"suite task {name}: split fractions must be 3 numbers >= 0 summing to 1: {fractions}"
        )
    seed = int(split.pop("seed", 0))
    if split:
        raise ValueError(f"suite task {name}: unknown split key(s) {sorted(split)} (kind, fractions, seed)")
    limits = {}
    for key in ("max_train", "max_test"):
        value = entry.get(key)
        if value is not None and int(value) < 1:
            raise ValueError(f"suite task {name}: {key} must be a positive number or null, got {value}")
        limits[key] = None if value is None else int(value)
    select = tuple(sorted((str(k), str(v)) for k, v in dict(entry.get("select") or {}).items()))
    return TaskSpec(
        name=name,
        file=str(entry["file"]),
        target=str(entry["target"]),
        per_atom=bool(entry.get("per_atom", False)),
        select=select,
        split=kind,
        fractions=fractions,
        seed=seed,
        unit=str(entry.get("unit") or ""),
        **limits,
    )


class LabelledGraphs(Dataset):
    """Graphs ``dataset[positions[k]]`` with graph-level labels attached as fields [1] (float64).

    It carries the dataset's ``cutoff``, so :func:`contrast.embed` takes the graphs as built (it refuses a
    cutoff other than the encoder's).
    """

    def __init__(self, dataset: CrystalDataset, positions: Sequence[int], labels: Mapping[str, np.ndarray]):
        self.dataset, self.positions = dataset, [int(p) for p in positions]
        self.labels = {name: np.asarray(values, dtype=np.float64) for name, values in labels.items()}
        self.cutoff = dataset.cutoff

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, k: int):
        graph = self.dataset[self.positions[k]]
        for name, values in self.labels.items():
            graph[name] = torch.tensor([values[k]], dtype=torch.float64)
        return graph

    def __iter__(self):
        return (self[k] for k in range(len(self)))


@dataclass
class TaskGraphs:
    """The probes' structures of one or more tasks that share them.

    Attributes:
        train: the probes' training graphs, labelled.
        test: the scored graphs, labelled.
        sizes: ``labelled`` (frames carrying the label), ``parts`` (the split's train/val/test sizes),
            ``train`` and ``test`` (after subsampling).
        split: dataset positions ``{"train", "val", "test"}`` of the probed structures (``val`` empty).
        dataset: the file's dataset (for its ids).
    """

    train: LabelledGraphs
    test: LabelledGraphs
    sizes: dict[str, Any]
    split: dict[str, list[int]]
    dataset: CrystalDataset


class SuiteData:
    """Loads each file of a suite once (graphs at ``cutoff``) and makes the tasks' labelled splits.

    Args:
        specs: all tasks of the run (the targets of a file's non-selecting tasks are loaded together).
        data_dir: the folder the tasks' files are relative to.
        cutoff: the encoder's cutoff, Å.
        cache_dir: dataset cache root (default ``$CONTRAST_CACHE`` or ``~/.cache/contrast``).
    """

    def __init__(
        self,
        specs: Sequence[TaskSpec],
        data_dir: str | Path,
        cutoff: float,
        cache_dir: str | Path | None = None,
    ):
        self.data_dir, self.cutoff, self.cache_dir = Path(data_dir), float(cutoff), cache_dir
        self.targets: dict[str, list[str]] = {}
        for spec in specs:
            names = self.targets.setdefault(spec.file, [])
            if not spec.select and spec.target not in names:
                names.append(spec.target)
        self._datasets: dict[str, CrystalDataset] = {}
        self._info: dict[str, list[dict]] = {}

    def path(self, spec: TaskSpec) -> Path:
        """The task's file."""
        return self.data_dir / spec.file

    def dataset(self, spec: TaskSpec) -> CrystalDataset:
        """The graphs of the task's file (every frame, in order), read once per file."""
        if spec.file not in self._datasets:
            self._datasets[spec.file] = load_dataset(
                str(self.path(spec)),
                cutoff=self.cutoff,
                targets=sorted(self.targets[spec.file]),
                cache_dir=self.cache_dir,
            )
        return self._datasets[spec.file]

    def labels(self, spec: TaskSpec) -> tuple[list[int], np.ndarray]:
        """Dataset positions of the labelled frames and their labels [n] (float64)."""
        dataset = self.dataset(spec)
        if not spec.select:
            positions = list(range(len(dataset)))
            values = dataset.targets(spec.target).reshape(len(dataset), -1)[:, 0].astype(np.float64)
        else:
            positions, values = self._selected(spec, dataset)
        if spec.per_atom:
            values = values / dataset.num_atoms()[positions]
        return positions, values

    def _selected(self, spec: TaskSpec, dataset: CrystalDataset) -> tuple[list[int], np.ndarray]:
        path = self.path(spec)
        if spec.file not in self._info:
            info, counts = frame_info(path)
            if len(info) != len(dataset) or not np.array_equal(counts, dataset.num_atoms()):
                raise ValueError(f"{path}: its frames do not line up with the structures of its dataset")
            self._info[spec.file] = info
        positions, values = [], []
        for k, info in enumerate(self._info[spec.file]):
            if all(str(info.get(key)) == value for key, value in spec.select):
                value = info.get(spec.target)
                if not _is_number(value) or not math.isfinite(float(value)):
                    raise ValueError(
                        f"{path}: frame {k} is selected by {dict(spec.select)} but its {spec.target!r} "
                        f"is not a finite number ({value!r}) (task {spec.name})"
                    )
                positions.append(k)
                values.append(float(value))
        if not positions:
            raise ValueError(f"{path}: no frame matches {dict(spec.select)} (task {spec.name})")
        return positions, np.array(values, dtype=np.float64)

    def task_graphs(self, specs: Sequence[TaskSpec], scored: str = "test") -> TaskGraphs:
        """The split and the labelled train/scored graphs of tasks sharing one :attr:`TaskSpec.graphs_key`.

        Args:
            scored: ``test`` scores the test part (the reported numbers); ``val`` scores a validation part
                for choosing a recipe without looking at the test parts: the split's own ``val`` part, or,
                where the split has none, a seeded eighth of the train part, the probes then training on the
                other seven eighths. Either way no test structure is read.
        """
        if scored not in SCORED_PARTS:
            raise ValueError(f"scored must be one of {SCORED_PARTS}, got {scored!r}")
        spec = specs[0]
        dataset = self.dataset(spec)
        positions, _ = self.labels(spec)
        labels = {s.label: self.labels(s)[1] for s in specs}
        if spec.split == "composition":
            parts = composition_split([dataset.formulas[p] for p in positions], spec.fractions, spec.seed)
        else:
            parts = random_split(len(positions), spec.fractions, spec.seed)
        train_part, scored_part = parts["train"], parts["test"]
        if scored == "val":
            train_part, scored_part = _validation_part(parts, spec.seed)
        chosen = {
            "train": _subsample(train_part, spec.max_train, [spec.seed, 1]),
            "test": _subsample(scored_part, spec.max_test, [spec.seed, 2]),
        }
        sizes = {
            "labelled": len(positions),
            "parts": {name: len(part) for name, part in parts.items()},
            **{name: len(part) for name, part in chosen.items()},
        }
        if not sizes["train"] or not sizes["test"]:
            raise ValueError(
                f"task {spec.name}: the split of the {len(positions)} labelled structures of "
                f"{self.path(spec)} leaves {sizes['train']} for training and {sizes['test']} for testing"
            )
        graphs = {
            name: LabelledGraphs(
                dataset, [positions[k] for k in part], {n: v[part] for n, v in labels.items()}
            )
            for name, part in chosen.items()
        }
        split = {"train": graphs["train"].positions, "val": [], "test": []}
        split[scored] = graphs["test"].positions
        return TaskGraphs(graphs["train"], graphs["test"], sizes, split, dataset)


def frame_info(path: str | Path) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Each frame's ``info`` of an extended-XYZ file (compressed or not) and its atom counts [S].

    Only the comment lines are parsed (ASE's ``key_val_str_to_dict``), not the atoms.

    Raises:
        ValueError: not an extended-XYZ file, or a frame that breaks the format (file and frame named).
    """
    from ase.io.extxyz import key_val_str_to_dict

    from contrast.data.io.extxyz import scan_frames

    path = Path(path)
    opener = _OPENERS.get(path.suffix.lower())
    name = path.stem if opener else path.name
    if not name.lower().endswith((".xyz", ".extxyz")):
        raise ValueError(f"{path}: selecting frames by a key of their info needs an extended-XYZ file")
    with (opener or open)(path, "rt") as handle:
        lines = handle.read().split("\n")
    frames, _ = scan_frames(lines)
    for index, span in enumerate(frames):
        if span.error is not None:
            raise ValueError(f"{path}: frame {index}: {span.error}")
    info = [key_val_str_to_dict(lines[span.start + 1]) for span in frames]
    return info, np.array([span.count for span in frames], dtype=np.int64)


def _validation_part(parts: Mapping[str, Sequence[int]], seed: int) -> tuple[list[int], list[int]]:
    """``(train, val)`` to score validation data: the split's val part, else a seeded eighth of train."""
    if len(parts["val"]):
        return list(parts["train"]), list(parts["val"])
    train = np.asarray(parts["train"])
    order = np.random.default_rng([seed, 3]).permutation(len(train))
    n_val = max(1, len(train) // 8)
    return sorted(train[order[n_val:]].tolist()), sorted(train[order[:n_val]].tolist())


def _subsample(indices: Sequence[int], limit: int | None, seed: list[int]) -> np.ndarray:
    """At most ``limit`` of ``indices``, drawn without replacement with ``seed`` and kept in order."""
    indices = np.asarray(indices, dtype=np.int64)
    if limit is None or len(indices) <= limit:
        return indices
    return np.sort(np.random.default_rng(seed).choice(indices, size=limit, replace=False))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )
