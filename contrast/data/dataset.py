"""Cached crystal-graph datasets: ``load_dataset(source) -> CrystalDataset``.

The first load of a file source reads every structure (see :mod:`contrast.data.readers`), builds and checks
its neighbour list, and writes a compact on-disk cache (see :mod:`contrast.data.store` and
:mod:`contrast.data.cache`).
Later loads memory-map that cache: only the pages an item touches are read, so the path forward for datasets
larger than RAM is the same code, and DataLoader workers share the page cache. In-memory lists are not cached.
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

from contrast.data.build import build_arrays
from contrast.data.cache import cache_key, default_cache_root, entry_name, write_atomically
from contrast.data.graph import CrystalArrays
from contrast.data.readers import read_entries, resolve_source
from contrast.data.store import item_arrays, item_graph, load_store, save_store

__all__ = ["CrystalDataset", "load_dataset"]

log = logging.getLogger(__name__)
REPORT_NAME = "data_report.json"


class CrystalDataset(Dataset):
    """Indexable crystal graphs with their targets.

    ``ds[i]`` is a contract ``Data`` (``z`` [N], ``pos`` [N, 3], ``cell`` [1, 3, 3], ``edge_index`` [2, E],
    ``cell_shift`` [E, 3]) plus the requested targets and ``idx`` [1] (its index in the dataset).

    Attributes:
        ids: one unique id per structure (``mp_id`` / ``id`` / CSV id / file name, else its position in the
            source; an id shared by several entries gets a content hash, see
            :func:`~contrast.data.build.unique_ids`). Ids do not depend on the cutoff or the error policy, so
            splits select structures by id (:mod:`contrast.data.splits`).
        formulas: reduced formulas.
        target_names: the targets every item carries.
        cutoff: neighbour cutoff radius, Å.
        source: where the structures came from.
        skipped: ``(entry, reason)`` for each entry left out with ``on_error="skip"``.
        isolated: ``{"index", "id", "file", "entry", "isolated_atoms"}`` for each kept structure with atoms
            that have no neighbour within the cutoff.
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
    ):
        self.arrays = arrays
        self.ids: list[str] = list(meta["ids"])
        self.formulas: list[str] = list(meta["formulas"])
        self.target_names: list[str] = list(meta["target_names"])
        self.cutoff: float = float(meta["cutoff"])
        self.source: str = str(meta["source"])
        self.skipped: list[tuple[str, str]] = [
            (f"{s['file']}: {s['entry']}", s["reason"]) for s in meta["skipped"]
        ]
        self.isolated: list[dict[str, Any]] = list(meta.get("isolated", []))
        self.cache_path = cache_path
        self.report_path = report_path
        self._meta = meta
        self.dtype = torch.get_default_dtype()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Data:
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} structures")
        return item_graph(self.arrays, index, self.target_names, self.dtype)

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

    def report(self) -> dict[str, Any]:
        """The data report: structures read, kept and skipped, and the kept ones with isolated atoms."""
        return _report(self._meta)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
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
            f"targets={self.target_names}, skipped={len(self.skipped)}, "
            f"with isolated atoms={len(self.isolated)})"
        )


def load_dataset(
    source: Any,
    cutoff: float = 5.0,
    targets: list[str] | None = None,
    on_error: str = "raise",
    cache_dir: str | os.PathLike | None = None,
    report_dir: str | os.PathLike | None = None,
    max_structures: int | None = None,
    require_neighbours: bool = False,
    **reader_options: Any,
) -> CrystalDataset:
    """Read, check and cache a crystal dataset.

    Args:
        source: a file ASE or pymatgen reads (extxyz, CIF, POSCAR; ``.gz`` allowed), a glob, a CSV with a CIF
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
            embedding), counted in ``ds.isolated`` and the data report, and a warning says how many.
        **reader_options: ``format`` for files, ``cif_column`` / ``id_column`` for CSVs, ``num_structures`` /
            ``seed`` for ``"emt"``.

    Raises:
        StructureError: a bad entry (file, entry and reason in the message), or every entry bad.
        FileNotFoundError: a missing path or a glob matching nothing.
    """
    targets = list(targets or [])
    spec = resolve_source(source, **reader_options)
    name = "<memory>" if spec.kind == "memory" else str(source)
    settings = {
        "source": name,
        "kind": spec.kind,
        "options": spec.options,
        "targets": targets,
        "cutoff": float(cutoff),
        "on_error": on_error,
        "max_structures": max_structures,
        "require_neighbours": require_neighbours,
    }

    def build() -> tuple[dict, dict]:
        entries = read_entries(spec, max_structures)
        arrays, meta = build_arrays(entries, cutoff, targets, on_error, require_neighbours, name)
        meta.update(target_names=targets, cutoff=float(cutoff), source=name)
        return arrays, meta

    if spec.kind == "memory":
        arrays, meta = build()
        dataset = CrystalDataset(arrays, meta)
    else:
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()
        folder = root / entry_name(name, cache_key(spec.files, settings))
        if not (folder / "meta.json").exists():
            arrays, meta = build()
            write_atomically(folder, lambda tmp: _write_entry(tmp, arrays, meta, on_error))
        else:
            log.info("loading cached dataset %s", folder)
        meta = json.loads((folder / "meta.json").read_text())
        report = folder / REPORT_NAME
        dataset = CrystalDataset(
            load_store(str(folder)), meta, str(folder), str(report) if report.exists() else None
        )
        if meta["skipped"]:
            log.warning(
                "%d entries of %s were skipped as bad input; see %s", len(meta["skipped"]), name, report
            )
    if dataset.isolated:
        first = ", ".join(record["id"] for record in dataset.isolated[:5])
        log.warning(
            "%d of %d structures of %s have atoms without a neighbour within the cutoff of %g Å (first: %s); "
            "they are kept and such an atom keeps its own embedding (require_neighbours=True refuses them)",
            len(dataset.isolated),
            len(dataset),
            name,
            float(cutoff),
            first,
        )
    if report_dir is not None and (on_error == "skip" or dataset.isolated):
        path = Path(report_dir) / REPORT_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_report(dataset._meta), indent=1))
        dataset.report_path = dataset.report_path or str(path)
    return dataset


def _report(meta: dict) -> dict:
    isolated = meta.get("isolated", [])
    return {
        "source": meta["source"],
        "read": meta["n_read"],
        "kept": len(meta["ids"]),
        "skipped": len(meta["skipped"]),
        "entries": meta["skipped"],
        "with_isolated_atoms": len(isolated),
        "isolated": isolated,
    }


def _write_entry(folder: str, arrays: dict, meta: dict, on_error: str) -> None:
    save_store(arrays, folder)
    if on_error == "skip" or meta["isolated"]:
        with open(os.path.join(folder, REPORT_NAME), "w") as handle:
            json.dump(_report(meta), handle, indent=1)
    with open(os.path.join(folder, "meta.json"), "w") as handle:  # written last: marks a complete entry
        json.dump(meta, handle)
