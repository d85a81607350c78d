"""Cached crystal datasets: ``load_dataset(source) -> CrystalDataset``.

The first load of a file source streams its structures from the readers (see :mod:`contrast.data.io.readers`
and :mod:`contrast.data.io.stream`), checks them and writes a compact on-disk cache in shards, several
processes
at once, resuming an interrupted build (see :mod:`contrast.data.store.shards`,
:mod:`contrast.data.store.arrays` and
:mod:`contrast.data.store.cache`). Two stores exist: the **graph store** keeps each structure's neighbour list
(read back as it is), the **structure store** keeps only atoms and cells, about 16 bytes per atom, and items
search their neighbours when they are read. Later loads memory-map the cache: only the pages an item touches
are read, so datasets larger than RAM work, and DataLoader workers share the page cache. In-memory lists are
not cached.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torch_geometric.data import Data

from contrast.data.io.readers import read_entries, resolve_source
from contrast.data.io.stream import source_name
from contrast.data.store.arrays import STORES, bytes_per_atom, decode, item_arrays, item_graph, load_store
from contrast.data.store.build import BuildSettings, build_arrays
from contrast.data.store.cache import build_lock, cache_key, default_cache_root, entry_name
from contrast.data.store.shards import REPORT_NAME, SHARD_SIZE, build_store, data_report
from contrast.graph.convert import CrystalArrays
from contrast.graph.neighbours import NeighbourSearch

__all__ = ["CrystalDataset", "load_dataset", "resolve_store"]

log = logging.getLogger(__name__)
STORE_CHOICES = ("auto", *STORES)


class CrystalDataset(Dataset):
    """Indexable crystal graphs with their targets.

    ``ds[i]`` is a contract ``Data`` (``z`` [N], ``pos`` [N, 3], ``cell`` [1, 3, 3], ``edge_index`` [2, E],
    ``cell_shift`` [E, 3]) plus the requested targets and ``idx`` [1] (its index in the dataset). From the
    structure store the neighbour list is searched when the item is read; with ``edges=False`` it is left
    out (for view datasets, which build their own).

    Attributes:
        ids: one unique id per structure (``mp_id`` / ``id`` / CSV id / file name, else its position in the
            source; an id shared by several entries gets a content hash, see
            :func:`~contrast.data.store.build.unique_ids`). Ids do not depend on the cutoff, the error policy
            or the
            store, so splits select structures by id (:mod:`contrast.data.splits`). Read from the store when
            first used.
        formulas: reduced formulas (read from the store when first used).
        target_names: the targets every item carries.
        cutoff: neighbour cutoff radius, Å.
        store: ``"graph"`` or ``"structure"``.
        edges: whether items carry their neighbour list.
        source: where the structures came from.
        skipped: ``(entry, reason)`` for each entry left out with ``on_error="skip"``.
        isolated: ``{"index", "id", "file", "entry", "isolated_atoms"}`` for each kept structure with atoms
            that have no neighbour within the cutoff (counted by the graph store only).
        report_path: the JSON data report (skipped entries, structures with isolated atoms), None when none
            was written.
        cache_path: the cache folder (None for in-memory sources).
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        meta: dict[str, Any],
        cache_path: str | None = None,
        report_path: str | None = None,
        cutoff: float | None = None,
        edges: bool = True,
    ):
        self.arrays = arrays
        self.target_names: list[str] = list(meta["target_names"])
        self.cutoff: float = float(cutoff if cutoff is not None else meta["cutoff"])
        self.store: str = "graph" if "edge_ptr" in arrays else "structure"
        self.edges = bool(edges)
        self.source: str = str(meta["source"])
        self.skipped: list[tuple[str, str]] = [
            (f"{s['file']}: {s['entry']}", s["reason"]) for s in meta["skipped"]
        ]
        self.isolated: list[dict[str, Any]] = list(meta.get("isolated", []))
        self.cache_path = cache_path
        self.report_path = report_path
        self._meta = meta
        self._size = len(arrays["atom_ptr"]) - 1
        self._ids: list[str] | None = None
        self._formulas: list[str] | None = None
        self._groups: list[str] | None = None
        self._search: NeighbourSearch | None = None
        self.dtype = torch.get_default_dtype()

    @property
    def ids(self) -> list[str]:
        if self._ids is None:
            self._ids = decode(self.arrays["ids"])
        return self._ids

    @property
    def groups(self) -> list[str] | None:
        """Each structure's group label (``load_dataset(group_key=...)``), or None when none was kept."""
        if "groups" not in self.arrays:
            return None
        if self._groups is None:
            self._groups = decode(self.arrays["groups"])
        return self._groups

    @property
    def formulas(self) -> list[str]:
        if self._formulas is None:
            self._formulas = decode(self.arrays["formulas"])
        return self._formulas

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index: int) -> Data:
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} structures")
        search = None
        if self.store == "structure" and self.edges:
            if self._search is None:  # one per process: created lazily in each DataLoader worker
                self._search = NeighbourSearch(self.cutoff)
            search = self._search
        return item_graph(self.arrays, index, self.target_names, self.dtype, search)

    def structure(self, index: int) -> CrystalArrays:
        """Float64 arrays (``z``, ``pos``, ``cell``) of structure ``index``."""
        return item_arrays(self.arrays, int(index))

    def atoms(self, index: int):
        """Structure ``index`` as a periodic ``ase.Atoms``."""
        from ase import Atoms

        crystal = self.structure(index)
        return Atoms(numbers=crystal.z, positions=crystal.pos, cell=crystal.cell, pbc=True)

    def num_atoms(self) -> np.ndarray:
        """Atoms per structure, [S] int64."""
        return np.diff(np.asarray(self.arrays["atom_ptr"]))

    def targets(self, name: str) -> np.ndarray:
        """All values of a graph-level target, [S, ...] float64 (without building graphs)."""
        return np.asarray(self.arrays[f"target.{name}"])

    def bytes_per_atom(self) -> float:
        """Size of the store per atom (see :func:`contrast.data.store.arrays.bytes_per_atom`)."""
        return bytes_per_atom(self.arrays)

    def report(self) -> dict[str, Any]:
        """The data report: structures read, kept and skipped, and the kept ones with isolated atoms."""
        return data_report(self._meta)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        # rebuilt where used, never pickled
        state.update(_ids=None, _formulas=None, _groups=None, _search=None)
        if self.cache_path is not None:  # workers re-open the memory map instead of pickling the arrays
            state["arrays"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.arrays is None:
            self.arrays = load_store(self.cache_path)

    def __repr__(self) -> str:
        return (
            f"CrystalDataset({len(self)} structures, source={self.source!r}, cutoff={self.cutoff}, "
            f"store={self.store!r}, targets={self.target_names}, skipped={len(self.skipped)}, "
            f"with isolated atoms={len(self.isolated)})"
        )


def resolve_store(store: str, views: bool) -> str:
    """The store ``store="auto"`` stands for: the structure store when views are built on the fly (they
    search their own neighbour lists), else the graph store."""
    if store not in STORE_CHOICES:
        raise ValueError(f"store must be one of {STORE_CHOICES}, got {store!r}")
    if store == "auto":
        return "structure" if views else "graph"
    return store


def load_dataset(
    source: Any,
    cutoff: float = 5.0,
    targets: list[str] | None = None,
    on_error: str = "raise",
    cache_dir: str | os.PathLike | None = None,
    report_dir: str | os.PathLike | None = None,
    max_structures: int | None = None,
    require_neighbours: bool = False,
    store: str = "auto",
    views: bool = False,
    workers: int | None = None,
    shard_size: int = SHARD_SIZE,
    group_key: str | None = None,
    **reader_options: Any,
) -> CrystalDataset:
    """Read, check and cache a crystal dataset.

    Args:
        source: a file ASE or pymatgen reads (extxyz, CIF, POSCAR; ``.gz`` allowed), a glob, a folder of
            structure files, a list of such files / folders / globs (one dataset, in order), a CSV with a CIF
            column, a CGCNN folder with ``id_prop.csv``, ``"default"``, ``"emt"``, or a list of pymatgen
            ``Structure`` / ``ase.Atoms``.
        cutoff: neighbour cutoff radius, Å.
        targets: names to attach to every item: ``energy`` [1], ``forces`` [N, 3], ``stress`` [1, 3, 3] or a
            graph property [1] (from ``info`` or a CSV column; ``target`` for CGCNN folders).
        on_error: ``"raise"`` on the first bad entry, or ``"skip"`` it and list it in ``ds.report_path``.
        cache_dir: cache root (default ``$CONTRAST_CACHE`` or ``~/.cache/contrast``).
        report_dir: also write the data report here (e.g. the run directory) when entries were skipped or
            structures have isolated atoms.
        max_structures: read at most this many structures.
        require_neighbours: treat an atom without neighbours within the cutoff as bad input (raised or
            skipped by ``on_error``). By default such structures are kept (an isolated atom keeps its own
            embedding); the graph store counts them in ``ds.isolated`` and the data report, with a warning.
        store: ``"graph"`` (neighbour lists stored), ``"structure"`` (atoms and cells only, neighbour lists
            searched per item, one cache for every cutoff) or ``"auto"``: the structure store when ``views``,
            else the graph store.
        views: the items feed views that rebuild their neighbour lists (contrastive pretraining): with the
            structure store, items then come without ``edge_index`` / ``cell_shift``.
        workers: processes building a new cache (default: the available CPUs, at most 8).
        shard_size: structures per shard of a new cache (see :mod:`contrast.data.store.shards`).
        group_key: keep each structure's text label of this name (``ds.groups``; e.g. ``group`` of the
            mlearn files) for group and block splits; a structure without it is bad input.
        **reader_options: ``format`` for files, ``cif_column`` / ``id_column`` for CSVs, ``num_structures`` /
            ``seed`` for ``"emt"``.

    Raises:
        StructureError: a bad entry (file, entry and reason in the message), or every entry bad.
        FileNotFoundError: a missing path or a glob matching nothing.
    """
    targets = list(targets or [])
    reader_options = {key: value for key, value in reader_options.items() if value is not None}
    store = resolve_store(store, views)
    settings = BuildSettings(float(cutoff), tuple(targets), on_error, require_neighbours, store, group_key)
    spec = resolve_source(source, **reader_options)
    name = "<memory>" if spec.kind == "memory" else source_name(source)
    edges = not (views and store == "structure")
    if spec.kind == "memory":
        entries = read_entries(spec, max_structures)
        arrays, meta = build_arrays(
            entries, cutoff, targets, on_error, require_neighbours, name, store=store, group_key=group_key
        )
        meta.update(target_names=targets, cutoff=float(cutoff), source=name, store=store)
        meta["isolated_counted"] = store == "graph"
        dataset = CrystalDataset(arrays, meta, cutoff=cutoff, edges=edges)
    else:
        folder = _cache_folder(spec, name, settings, max_structures, cache_dir)
        if not (folder / "meta.json").exists():
            with build_lock(folder):  # another process (a DDP rank) may be building it right now
                if not (folder / "meta.json").exists():
                    build_store(spec, folder, settings, name, max_structures, workers, shard_size)
        else:
            log.info("loading cached dataset %s", folder)
        dataset = _open_store(folder, cutoff, edges, name)
    _warn_isolated(dataset, name)
    if report_dir is not None and (on_error == "skip" or dataset.isolated):
        path = Path(report_dir) / REPORT_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data_report(dataset._meta), indent=1))
        dataset.report_path = dataset.report_path or str(path)
    return dataset


def _cache_folder(spec, name: str, settings: BuildSettings, max_structures: int | None, cache_dir) -> Path:
    """The cache entry of a file source: keyed by every file it reads and every setting that shapes it."""
    key_settings = {
        "source": name,
        "kind": spec.kind,
        "options": spec.options,
        "targets": list(settings.targets),
        # the structure store searches the full cutoff only to refuse atoms without neighbours
        "cutoff": settings.cutoff if settings.store == "graph" or settings.require_neighbours else None,
        "on_error": settings.on_error,
        "max_structures": max_structures,
        "require_neighbours": settings.require_neighbours,
        "store": settings.store,
    }
    if settings.group_key is not None:  # only then, so that the keys of other caches stay as they were
        key_settings["group_key"] = settings.group_key
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()
    return root / entry_name(name, cache_key(spec.read_files(), key_settings))


def _open_store(folder: Path, cutoff: float, edges: bool, name: str) -> CrystalDataset:
    """The dataset of a built cache entry (memory-mapped), with a warning when entries were skipped."""
    meta = json.loads((folder / "meta.json").read_text())
    report = folder / REPORT_NAME
    dataset = CrystalDataset(
        load_store(str(folder)),
        meta,
        str(folder),
        str(report) if report.exists() else None,
        cutoff=cutoff,
        edges=edges,
    )
    if meta["skipped"]:
        log.warning("%d entries of %s were skipped as bad input; see %s", len(meta["skipped"]), name, report)
    return dataset


def _warn_isolated(dataset: CrystalDataset, name: str) -> None:
    if not dataset.isolated:
        return
    first = ", ".join(record["id"] for record in dataset.isolated[:5])
    log.warning(
        "%d of %d structures of %s have atoms without a neighbour within the cutoff of %g Å (first: %s); "
        "they are kept and such an atom keeps its own embedding (require_neighbours=True refuses them)",
        len(dataset.isolated),
        len(dataset),
        name,
        float(dataset.cutoff),
        first,
    )
