"""Entries -> checked graphs in compact arrays; bad entries raise or are skipped with file and reason.

Every kept structure gets a unique, stable id (see :func:`unique_ids`), and structures with atoms that have no
neighbour within the cutoff are kept (such an atom keeps its own embedding) and counted, unless
``require_neighbours`` asks to treat them as bad input.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import os
import warnings
from typing import Any

import numpy as np

from contrast.data.entry import Entry
from contrast.data.graph import StructureError, graph_edges, to_arrays
from contrast.data.neighbours import NeighbourSearch
from contrast.data.store import PER_ATOM_TARGETS, StoreBuilder, merge_arrays

__all__ = ["build_arrays", "entry_label", "reduced_formula", "unique_ids"]

log = logging.getLogger(__name__)
ON_ERROR = ("raise", "skip")


def entry_label(entry: Entry) -> str:
    """How an entry is named in errors and reports: its index, plus its id when known."""
    return f"{entry.index} ({entry.id})" if entry.id is not None else str(entry.index)


def build_arrays(
    entries: list[Entry],
    cutoff: float,
    targets: list[str],
    on_error: str = "raise",
    require_neighbours: bool = False,
    source: str = "",
    workers: int | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Build every entry's neighbour list and targets.

    Args:
        require_neighbours: treat an atom without neighbours within the cutoff as bad input (else the
            structure is kept and listed in ``meta["isolated"]``).
        workers: processes sharing the work (default: up to 2 for 4000 entries or more, where the
            neighbour lists dominate the first load; 1 builds in this process).

    Returns:
        ``(arrays, meta)``: the store arrays and ``meta`` with ``ids`` (unique), ``formulas``, ``skipped`` (a
        list of ``{"file", "entry", "reason"}``), ``isolated`` (a list of ``{"index", "id", "file", "entry",
        "isolated_atoms"}`` for the structures with atoms without neighbours) and ``n_read``.

    Raises:
        StructureError: the first bad entry (``on_error="raise"``), or every entry bad (``on_error="skip"``).
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if len(entries) >= 4000 else 1
    settings = (cutoff, targets, on_error, require_neighbours)
    if workers > 1 and "fork" in mp.get_all_start_methods():
        global _SHARED
        _SHARED = (entries, settings)  # inherited by the forked workers, so entries are never pickled
        bounds = np.linspace(0, len(entries), 4 * workers + 1).astype(int)
        try:
            with mp.get_context("fork").Pool(workers) as pool:
                chunks = pool.starmap(_build_range, zip(bounds[:-1], bounds[1:]))
        finally:
            _SHARED = None
    else:
        chunks = [_build_chunk(entries, *settings)]
    for chunk in chunks:
        if isinstance(chunk, StructureError):
            raise chunk
    arrays = merge_arrays([chunk[0] for chunk in chunks if chunk[0] is not None], targets)
    meta = {key: [v for chunk in chunks for v in chunk[1][key]] for key in ("ids", "formulas", "skipped")}
    meta["isolated"], offset = [], 0
    for _, part in chunks:
        meta["isolated"] += [{**record, "index": record["index"] + offset} for record in part["isolated"]]
        offset += len(part["ids"])
    if not meta["ids"]:
        first = (
            meta["skipped"][0]
            if meta["skipped"]
            else {"file": source, "entry": None, "reason": "no structures"}
        )
        raise StructureError(
            f"all {len(entries)} entries are bad, nothing to load (first: entry {first['entry']}: "
            f"{first['reason']})",
            source=first["file"] or source,
        )
    if meta["skipped"]:
        log.warning("skipped %d of %d entries of %s (bad input)", len(meta["skipped"]), len(entries), source)
    read_ids = [entry.id if entry.id is not None else str(entry.index) for entry in entries]
    meta["ids"] = unique_ids(meta["ids"], read_ids, arrays)
    for record in meta["isolated"]:
        record["id"] = meta["ids"][record["index"]]
    return arrays, {**meta, "n_read": len(entries)}


def unique_ids(ids: list[str], read_ids: list[str | None], arrays: dict[str, np.ndarray]) -> list[str]:
    """Make the kept structures' ids unique in a way that does not depend on which entries were kept.

    An id that several read entries share (e.g. every frame of a trajectory named after its file) becomes
    ``"<id>@<hash>"``, with the hash of the structure's atomic numbers, positions and cell; exact copies
    under one id are then numbered ``"~2"``, ``"~3"`` in reading order. Whether an id is shared is decided
    over every read entry, bad ones included, so skipping an entry or changing the cutoff renames no other.

    Args:
        ids: the kept structures' ids [S] (every entry without an id already named by its reader position).
        read_ids: the ids of all read entries, kept or not.
        arrays: the store arrays of the kept structures (for the content hashes).
    """
    counts: dict[str, int] = {}
    for entry_id in read_ids:
        if entry_id is not None:
            counts[entry_id] = counts.get(entry_id, 0) + 1
    out, seen = [], set()
    for index, entry_id in enumerate(ids):
        if counts.get(entry_id, 0) > 1:
            entry_id = f"{entry_id}@{_content_hash(arrays, index)}"
        name, copy = entry_id, 1
        while name in seen:
            copy += 1
            name = f"{entry_id}~{copy}"
        seen.add(name)
        out.append(name)
    return out


def _content_hash(arrays: dict[str, np.ndarray], index: int) -> str:
    a0, a1 = (int(v) for v in arrays["atom_ptr"][index : index + 2])
    digest = hashlib.sha256()
    for part in (arrays["z"][a0:a1], arrays["pos"][a0:a1], arrays["cell"][index]):
        digest.update(np.ascontiguousarray(part, dtype=np.float64).tobytes())
    return digest.hexdigest()[:12]


_SHARED = None


def _build_range(start: int, stop: int):
    entries, settings = _SHARED
    return _build_chunk(entries[start:stop], *settings)


def _build_chunk(
    entries: list[Entry], cutoff: float, targets: list[str], on_error: str, require_neighbours: bool
):
    """Serial build of some entries: ``(arrays or None, meta)``, or the located error to raise."""
    builder = StoreBuilder(targets)
    search = NeighbourSearch(cutoff)
    meta = {"ids": [], "formulas": [], "skipped": [], "isolated": []}
    for entry in entries:
        try:
            crystal, edge_index, shift, values = _process(entry, cutoff, targets, search, require_neighbours)
        except StructureError as error:
            if on_error == "raise":
                return error.located(entry.source, entry_label(entry))
            meta["skipped"].append(
                {"file": entry.source, "entry": entry_label(entry), "reason": error.reason}
            )
            continue
        isolated = len(crystal.z) - len(np.unique(edge_index[1]))
        if isolated:
            meta["isolated"].append(
                {
                    "index": len(meta["ids"]),
                    "file": entry.source,
                    "entry": entry_label(entry),
                    "isolated_atoms": isolated,
                }
            )
        # an entry without an id is named by its position in the source, which skipping does not change
        meta["ids"].append(entry.id if entry.id is not None else str(entry.index))
        meta["formulas"].append(reduced_formula(crystal.z))
        builder.add(crystal, edge_index, shift, values)
    return (builder.finish() if len(builder) else None), meta


def _process(entry: Entry, cutoff: float, targets: list[str], search, require_neighbours: bool):
    if entry.error is not None:
        raise StructureError(entry.error)
    crystal = to_arrays(entry.structure)
    edge_index, shift = graph_edges(crystal, cutoff, search, require_neighbours)
    values = {name: _target(entry, name, len(crystal.z)) for name in targets}
    return crystal, edge_index, shift, values


def _target(entry: Entry, name: str, n_atoms: int) -> np.ndarray:
    """One target in stored layout: forces [N, 3], stress [1, 3, 3], anything else [1]."""
    value = entry.properties.get(name)
    if value is None:
        raise StructureError(f"target {name!r} is missing (available: {sorted(entry.properties)})")
    value = np.asarray(value, dtype=np.float64)
    if name in PER_ATOM_TARGETS:
        expected = (n_atoms, 3)
    elif name == "stress":
        expected = (1, 3, 3)
    else:
        expected = (1,)
    if value.size != int(np.prod(expected)):
        raise StructureError(f"target {name!r} has shape {value.shape}, expected {expected}")
    if not np.isfinite(value).all():
        raise StructureError(f"target {name!r} is NaN or infinite")
    return value.reshape(expected)


_FORMULAS: dict[tuple, str] = {}


def reduced_formula(z: np.ndarray) -> str:
    """pymatgen's reduced formula of a set of atomic numbers (memoised by composition)."""
    numbers, counts = np.unique(z, return_counts=True)
    key = (tuple(numbers.tolist()), tuple(counts.tolist()))
    formula = _FORMULAS.get(key)
    if formula is None:
        from ase.data import chemical_symbols
        from pymatgen.core.composition import Composition, reduce_formula

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # noble gases lack electronegativities; ordering still works
            # reduce_formula plus the special cases is what Composition.reduced_formula does, without
            # building a Composition (a third of the first load otherwise)
            formula, _ = reduce_formula({chemical_symbols[n]: c for n, c in zip(*key)})
        formula = Composition.special_formulas.get(formula, formula)
        _FORMULAS[key] = formula
    return formula
