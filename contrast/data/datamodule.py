"""``CrystalDataModule``: load, split and batch a crystal dataset for Lightning (Hydra-friendly arguments)."""

from __future__ import annotations

import inspect
import json
import logging
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Subset, get_worker_info
from torch_geometric.loader.dataloader import Collater

from contrast.data.dataset import CrystalDataset, load_dataset
from contrast.data.leakage import remove_leakage
from contrast.data.sampling import SourceSampler, source_probabilities
from contrast.data.sources import (
    MultiSourceDataset,
    SourcePart,
    load_sources,
    parse_sources,
    source_summary,
    split_sources,
)
from contrast.data.splits import (
    SPLIT_NAMES,
    block_split,
    composition_split,
    group_split,
    load_split,
    random_split,
    save_split,
    select_split,
)

log = logging.getLogger(__name__)

__all__ = ["CrystalDataModule"]

SPLITS = ("random", "composition", "group", "blocks", "file")


class WorkerBatchCollater:
    """PyG's collation, and batches made in DataLoader workers travel to the main process by value.

    torch hands every tensor that a worker returns to the main process through its own shared-memory segment
    and file descriptor. A PyG batch of two views holds about 40 small tensors (the fields plus the slice and
    increment tables of each view), and that transfer can cost more than making the views (BENCHMARKS.md).
    Pickled by value, a batch is one buffer through the worker's pipe. Such a buffer is larger than the pipe
    holds, and a full pipe to a killed main process would keep a worker from exiting: the loaders'
    ``worker_init_fn`` (:class:`contrast.data.workers.WorkerInit`) ends workers with their parent.
    """

    def __init__(self, dataset):
        self.collate = Collater(dataset, None, None)

    def __call__(self, items: list) -> Any:
        batch = self.collate(items)
        return _ByValue(batch) if get_worker_info() is not None else batch


class _ByValue:
    """Pickles its value with the plain pickler (tensors by value), and unpickles to the value itself."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __reduce__(self):
        return pickle.loads, (pickle.dumps(self.value, protocol=pickle.HIGHEST_PROTOCOL),)


class EpochRandomSampler(RandomSampler):
    """Shuffles with a generator seeded by ``(seed, epoch)``, so a resumed run sees the same order as an
    uninterrupted one. Lightning calls :meth:`set_epoch` each epoch (and under DDP swaps in its
    ``DistributedSampler``, which is seeded the same way)."""

    def __init__(self, data_source, seed: int = 0):
        super().__init__(data_source)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        yield from torch.randperm(len(self.data_source), generator=generator).tolist()


class CrystalDataModule(pl.LightningDataModule):
    """Crystal graphs split into train/val/test, batched with PyG's collation (:class:`WorkerBatchCollater`).

    Args:
        source: anything :func:`contrast.load_dataset` reads.
        cutoff: neighbour cutoff radius, Å.
        targets: target names attached to each graph.
        batch_size: graphs per batch.
        num_workers: DataLoader worker processes (0 loads in the main process).
        split: ``"random"``, ``"composition"`` (no reduced formula in two parts), ``"group"`` (no group in two
            parts), ``"blocks"`` (contiguous blocks of each group, so that no trajectory's neighbouring frames
            sit on both sides) or ``"file"``.
        fractions: train, val and test fractions.
        seed: split seed.
        split_file: a ``splits.json`` for ``split="file"``; its structures are selected by id (see
            :mod:`contrast.data.splits`), so it may come from a run with another cutoff or skip policy.
        on_error: ``"raise"`` or ``"skip"`` bad entries.
        cache_dir: dataset cache root.
        output_dir: run directory; ``splits.json`` and the data report are written there.
        view_transform: an object with ``wrap(dataset) -> dataset`` whose items are ``(view_a, view_b)``;
            every split is wrapped, and batches become ``[Batch_a, Batch_b]``. When ``wrap`` takes ``fixed``,
            the val and test splits are wrapped with ``fixed=True``: their views stay the same every epoch,
            so the validation loss carries no sampling noise between epochs.
        max_structures: read at most this many structures.
        exclude_from: leakage guard, ``{"source": ..., "split_file": ..., "split": "test"}``: drop from train
            and val every structure that also appears in that part of another dataset (its split file's
            structures are found by id; all of ``source`` without a split file).
        require_neighbours: treat an atom without neighbours within the cutoff as bad input (by default such
            structures are kept and counted in the data report).
        sources: several sources instead of ``source``, ``[{"path", "name", "weight", "max_structures"}]``
            (see :func:`contrast.data.sources.parse_sources`). Each is split on its own and the parts joined;
            training draws source ``k`` with probability ``p_k``
            (:class:`contrast.data.sampling.SourceSampler`); val and test take every structure once.
        sampling_temperature: with ``sources``, ``p_k ∝ n_k^(1/T)`` for the sources' training sizes ``n_k``
            instead of the weights.
        samples_per_epoch: with ``sources``, structures drawn per training epoch over all ranks (default: the
            training structures of all sources).
        store: ``"graph"``, ``"structure"`` or ``"auto"`` (see :func:`contrast.load_dataset`): with
            ``view_transform`` set, ``"auto"`` is the structure store and items leave the neighbour list to
            the views.
        min_batch_size: the fewest crystals a batch may hold (the task's loss sets it: 2 for contrastive
            losses, which compare the crystals of a batch). A last batch of an epoch that would hold fewer is
            dropped, with a log line; a split too small for one such batch is an error.
        format: the file format for ASE (default: from the file name).
        cif_column: the CIF column of a CSV source (default: a column named ``cif``).
        id_column: the id column of a CSV source (default: ``material_id``, ``mp_id``, ``id`` or ``name``).
        group_key: a text label of each structure that names its group (``group`` in the mlearn files):
            ``split="group"`` puts whole groups into one part; ``split="blocks"`` cuts each group into
            contiguous blocks (all structures are one group without a key). Energy runs report their
            validation errors per group.
        block_size: structures per block of ``split="blocks"``.
        block_spread: pick the held-out blocks evenly along each group instead of at random
            (:func:`contrast.data.splits.block_split`).
    """

    def __init__(
        self,
        source: Any,
        cutoff: float = 5.0,
        targets: Sequence[str] | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        split: str = "random",
        fractions: Sequence[float] = (0.8, 0.1, 0.1),
        seed: int = 0,
        split_file: str | None = None,
        on_error: str = "raise",
        cache_dir: str | None = None,
        output_dir: str | None = None,
        view_transform: Any = None,
        max_structures: int | None = None,
        exclude_from: dict | None = None,
        require_neighbours: bool = False,
        sources: Sequence[dict] | None = None,
        sampling_temperature: float | None = None,
        samples_per_epoch: int | None = None,
        store: str = "auto",
        min_batch_size: int = 1,
        format: str | None = None,
        cif_column: str | None = None,
        id_column: str | None = None,
        group_key: str | None = None,
        block_size: int = 10,
        block_spread: bool = False,
    ):
        super().__init__()
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if split == "file" and split_file is None:
            raise ValueError("split='file' needs split_file")
        if split == "group" and group_key is None:
            raise ValueError("split='group' needs group_key, the text label naming each structure's group")
        if sources and group_key is not None:
            raise ValueError("group_key works with one source (data.path), not with data.sources")
        self.source = source
        self.cutoff = cutoff
        self.targets = list(targets or [])
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.split = split
        self.fractions = tuple(fractions)
        self.seed = seed
        self.split_file = split_file
        self.on_error = on_error
        self.cache_dir = cache_dir
        self.output_dir = output_dir
        self.view_transform = view_transform
        self.max_structures = max_structures
        self.exclude_from = dict(exclude_from) if exclude_from else None
        self.require_neighbours = bool(require_neighbours)
        self.store = store
        self.min_batch_size = int(min_batch_size)
        self.group_key = group_key
        self.block_size = int(block_size)
        self.block_spread = bool(block_spread)
        options = {"format": format, "cif_column": cif_column, "id_column": id_column}
        self.reader_options = {key: value for key, value in options.items() if value is not None}
        self.sources = parse_sources(sources) if sources else None
        self.sampling_temperature = sampling_temperature
        self.samples_per_epoch = samples_per_epoch
        self.source_probabilities: Any = None  # [K], set by setup with sources
        self.source_draws: dict[int, Any] = {}  # {epoch: structures drawn per source [K]}
        self._train_part: SourcePart | None = None
        self.leakage: dict[str, Any] | None = None
        self.dataset: CrystalDataset | None = None
        self.splits: dict[str, list[int]] | None = None
        self.epoch = 0
        self._samplers: list[EpochRandomSampler | SourceSampler] = []
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        """Load the dataset, split it, write ``splits.json`` and wrap the splits in the view transform."""
        if self.dataset is not None:
            return
        options = dict(
            cutoff=self.cutoff,
            targets=self.targets,
            on_error=self.on_error,
            cache_dir=self.cache_dir,
            report_dir=self.output_dir,
            max_structures=self.max_structures,
            require_neighbours=self.require_neighbours,
            store=self.store,
            views=self.view_transform is not None,
            **self.reader_options,
        )
        if self.group_key is not None:
            options["group_key"] = self.group_key
        if self.sources:
            self.dataset = load_sources(self.sources, **options)
        else:
            self.dataset = load_dataset(self.source, **options)
        self.splits = self._make_split(self.dataset)
        if self.exclude_from:
            self._exclude_overlap()
        if self.output_dir is not None:
            Path(self.output_dir).mkdir(parents=True, exist_ok=True)
            save_split(self.splits, os.path.join(self.output_dir, "splits.json"), self.dataset.ids)
        part = SourcePart if self.sources else Subset
        train, val, test = (part(self.dataset, self.splits[name]) for name in ("train", "val", "test"))
        if self.sources:
            weights, names = ([spec[key] for spec in self.sources] for key in ("weight", "name"))
            temperature = self.sampling_temperature
            self.source_probabilities = source_probabilities(train.sizes(), weights, temperature, names)
            self._train_part = train
        if self.view_transform is not None:
            train, val, test = self._wrap(train, False), self._wrap(val, True), self._wrap(test, True)
        self.train_set, self.val_set, self.test_set = train, val, test
        self.set_epoch(self.epoch)  # a checkpoint restored before setup already chose the epoch

    def _wrap(self, part: Dataset, fixed: bool) -> Dataset:
        wrap = self.view_transform.wrap
        if fixed and "fixed" in inspect.signature(wrap).parameters:
            return wrap(part, fixed=True)
        return wrap(part)

    def _exclude_overlap(self) -> None:
        """Leakage guard: drop from train/val every structure that also appears (same reduced formula and
        structure) in another dataset's split, e.g. the test split of a downstream probe.

        The held-out structures are found by id in ``source`` read again here (every readable entry kept), so
        the probe run's cutoff and skip policy do not matter; ids of the split file that this read lacks are
        counted in the report (``held_out_missing``) and named in a warning."""
        spec = self.exclude_from
        part = spec.get("split", "test")
        if part not in SPLIT_NAMES:
            raise ValueError(f"data.exclude_from.split must be one of {SPLIT_NAMES}, got {part!r}")
        other = load_dataset(spec["source"], cutoff=self.cutoff, on_error="skip", cache_dir=self.cache_dir)
        held_out, missing = list(range(len(other))), []
        if spec.get("split_file"):
            positions, absent = select_split(spec["split_file"], other.ids)
            held_out, missing = positions[part], absent[part]
        report: dict[str, Any] = {
            "against": str(spec["source"]),
            "split_file": str(spec["split_file"]) if spec.get("split_file") else None,
            "split": part if spec.get("split_file") else None,
            "held_out": len(held_out),
            "held_out_missing": len(missing),
            "missing_ids": missing,
        }
        if missing:
            log.warning(
                "leakage guard: %d of the %d %s structures of %s are not among the readable entries of %s "
                "(e.g. %s) and cannot be checked",
                len(missing),
                len(held_out) + len(missing),
                part,
                spec["split_file"],
                spec["source"],
                ", ".join(missing[:3]),
            )
        for name in ("train", "val"):
            indices = self.splits[name]
            kept, removed = remove_leakage(_AtomsView(self.dataset, indices), _AtomsView(other, held_out))
            self.splits[name] = [indices[k] for k in kept]
            report[f"removed_from_{name}"] = int(removed)
        self.leakage = report
        log.warning(
            "leakage guard: removed %d train and %d val structures that appear in %s",
            report["removed_from_train"],
            report["removed_from_val"],
            spec["source"],
        )
        if self.output_dir is not None:
            Path(self.output_dir).mkdir(parents=True, exist_ok=True)
            Path(self.output_dir, "leakage.json").write_text(json.dumps(report, indent=2))

    def _make_split(self, dataset: CrystalDataset) -> dict[str, list[int]]:
        if self.split == "file":
            split = load_split(self.split_file, dataset.ids)
            unused = len(dataset) - sum(len(part) for part in split.values())
            if unused:
                log.warning(
                    "%d of the %d structures of %s are in no part of the split file %s (left out)",
                    unused,
                    len(dataset),
                    dataset.source,
                    self.split_file,
                )
            return split
        if isinstance(dataset, MultiSourceDataset):
            return split_sources(dataset, self.split, self.fractions, self.seed)
        if self.split == "composition":
            return composition_split(dataset.formulas, self.fractions, self.seed)
        if self.split == "group":
            return group_split(dataset.groups, self.fractions, self.seed)
        if self.split == "blocks":
            groups = dataset.groups if dataset.groups is not None else [""] * len(dataset)
            return block_split(groups, self.fractions, self.seed, self.block_size, self.block_spread)
        return random_split(len(dataset), self.fractions, self.seed)

    def part_groups(self, part: str) -> list[str] | None:
        """The group of each structure of a part (``train``, ``val``, ``test``), in the part's order; None
        without ``group_key``."""
        groups = getattr(self.dataset, "groups", None)
        if groups is None or self.splits is None:
            return None
        return [groups[i] for i in self.splits[part]]

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the shuffling samplers and the wrapped view datasets (training views are
        re-drawn; val and test views wrapped with ``fixed=True`` stay the same)."""
        self.epoch = int(epoch)
        for part in (self.train_set, self.val_set, self.test_set, *self._samplers):
            if hasattr(part, "set_epoch"):
                part.set_epoch(self.epoch)

    def state_dict(self) -> dict[str, int]:
        # Checkpoints are written at the end of an epoch: a resumed run starts with the next one.
        return {"next_epoch": self.epoch + 1}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        # Restored before Lightning creates the first iterator, which it does before any epoch hook runs.
        self.set_epoch(int(state_dict.get("next_epoch", 0)))

    def _source_sampler(self) -> SourceSampler:
        """Draws the training part by the sources' probabilities and takes this rank's share itself."""
        ranks, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        return SourceSampler(
            self._train_part.sources,
            self.source_probabilities,
            self.samples_per_epoch,
            self.seed,
            num_replicas=ranks,
            rank=rank,
        )

    def source_mix(self, epoch: int) -> dict[str, float]:
        """Training epoch ``epoch``'s share of each source over all ranks, ``data/source_fraction/<name>``,
        and its probability, ``data/source_probability/<name>`` (empty for one source); records the draws."""
        if not self.sources or self.source_probabilities is None:
            return {}
        counts = self._source_sampler().counts(epoch)
        self.source_draws[int(epoch)] = counts
        mix = {}
        for k, spec in enumerate(self.sources):
            mix[f"data/source_fraction/{spec['name']}"] = float(counts[k] / counts.sum())
            mix[f"data/source_probability/{spec['name']}"] = float(self.source_probabilities[k])
        return mix

    def source_report(self) -> dict[str, dict[str, Any]] | None:
        """Per source: path, size, split sizes, weight, probability and structures drawn (all epochs this
        process trained, and per epoch); None for one source."""
        if not self.sources or self.dataset is None:
            return None
        weights = [spec["weight"] for spec in self.sources]
        probabilities = self.source_probabilities
        return source_summary(self.dataset, self.splits, weights, probabilities, self.source_draws)

    def _sampler(self, dataset: Dataset) -> EpochRandomSampler | SourceSampler:
        sampler = self._source_sampler() if self.sources else EpochRandomSampler(dataset, self.seed)
        sampler.set_epoch(self.epoch)
        self._samplers = [*self._samplers[-3:], sampler]  # the live loaders' samplers only
        return sampler

    def _drop_last(self, dataset: Dataset, sampler: Any, part: str) -> bool:
        """Whether the last batch of each epoch (per rank) would hold fewer than ``min_batch_size`` crystals
        and is to be dropped.

        Raises:
            ValueError: a training split whose rank share is too small for a single such batch (a validation
                or test split that small is left unscored, with a warning).
        """
        if self.min_batch_size <= 1:
            return False
        world = self.trainer.world_size if self.trainer is not None else 1
        per_rank = -(-len(sampler if sampler is not None else dataset) // world)
        if 0 < per_rank < self.min_batch_size:
            message = (
                f"the {part} split holds {per_rank} crystal(s) per process, fewer than the "
                f"{self.min_batch_size} a batch of this task's loss needs"
            )
            if part == "train":
                raise ValueError(f"{message}: give it more structures")
            log.warning("%s: it is not scored", message)
            return True
        last = per_rank % self.batch_size
        if 0 < last < self.min_batch_size:
            log.info(
                "%s: the last batch of each epoch would hold %d crystal(s), fewer than the %d the loss "
                "needs: it is dropped",
                part,
                last,
                self.min_batch_size,
            )
            return True
        return False

    def _loader(self, dataset: Dataset, shuffle: bool, part: str) -> DataLoader:
        from contrast.data.workers import WorkerInit

        sampler = self._sampler(dataset) if shuffle else None
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=WorkerBatchCollater(dataset),
            # Workers end with a killed trainer, and are seeded as Lightning's own worker_init_fn would.
            worker_init_fn=WorkerInit(self.trainer.global_rank if self.trainer is not None else None),
            persistent_workers=False,  # views are re-seeded per epoch in freshly started workers
            drop_last=self._drop_last(dataset, sampler, part),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True, part="train")

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False, part="val")

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False, part="test")


class _AtomsView:
    """Lazy ``ase.Atoms`` of some entries of a dataset (for the leakage guard)."""

    def __init__(self, dataset: CrystalDataset, indices: Sequence[int]):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        return self.dataset.atoms(self.indices[k])
