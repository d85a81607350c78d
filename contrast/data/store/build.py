"""Entries -> checked structures (and graphs) in compact arrays; bad entries raise or are skipped with file
and reason.

Both stores check every structure the same way, so they keep the same structures under the same ids: a
structure store searches neighbours only within :data:`CHECK_CUTOFF` (enough to find atoms closer than
0.5 Å, and fast), unless ``require_neighbours`` asks for the full cutoff. Every kept structure gets a
unique, stable id (see :func:`unique_ids`). In the graph store, structures with atoms that have no neighbour
within the cutoff are kept (such an atom keeps its own embedding) and counted; the structure store, which
searches no full neighbour lists while building, does not count them.
"""

from __future__ import annotations

import hashlib
import logging
import math
import multiprocessing as mp
import os
import warnings
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np

from contrast.data.io.entry import Entry
from contrast.data.store.arrays import (
    PER_ATOM_TARGETS,
    STORES,
    StoreBuilder,
    decode,
    merge_arrays,
    string_array,
)
from contrast.graph.convert import StructureError, graph_edges, to_arrays
from contrast.graph.neighbours import NeighbourSearch

__all__ = [
    "BuildSettings",
    "build_arrays",
    "build_chunk",
    "entry_label",
    "reduced_formula",
    "unique_ids",
    "all_bad_error",
]

log = logging.getLogger(__name__)
ON_ERROR = ("raise", "skip")
# Å: the structure store looks for atoms closer than 0.5 Å with this radius. vesin's cell lists get slow for
# radii far below the cell size, so the search runs at this radius and keeps the pairs closer than 0.5 Å.
CHECK_CUTOFF = 1.5


@dataclass(frozen=True)
class BuildSettings:
    """What shapes a built store: the cutoff, targets, error policy, neighbour requirement and store kind."""

    cutoff: float
    targets: tuple[str, ...] = ()
    on_error: str = "raise"
    require_neighbours: bool = False
    store: str = "graph"
    group_key: str | None = None  # a text label kept per structure (``groups``), e.g. for group splits

    def __post_init__(self):
        if self.on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {self.on_error!r}")
        if self.store not in STORES:
            raise ValueError(f"store must be one of {STORES}, got {self.store!r}")


def entry_label(entry: Entry) -> str:
    """How an entry is named in errors and reports: its index, plus its id when known."""
    return f"{entry.index} ({entry.id})" if entry.id is not None else str(entry.index)


def read_id(entry: Entry) -> str:
    """The id an entry is read under: its own, else its position in the source (which skipping keeps)."""
    return entry.id if entry.id is not None else str(entry.index)


def build_arrays(
    entries: list[Entry],
    cutoff: float,
    targets: list[str],
    on_error: str = "raise",
    require_neighbours: bool = False,
    source: str = "",
    workers: int | None = None,
    store: str = "graph",
    group_key: str | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Check every entry in memory and build its store arrays (neighbour lists in the graph store).

    Args:
        require_neighbours: treat an atom without neighbours within the cutoff as bad input (else the
            structure is kept and, in the graph store, listed in ``meta["isolated"]``).
        workers: processes sharing the work (default: up to 2 for 4000 entries or more; 1 builds in this
            process).
        store: ``"graph"`` or ``"structure"`` (see :mod:`contrast.data.store.arrays`).
        group_key: keep each entry's text label of this name as ``groups`` (an entry without it is bad
            input).

    Returns:
        ``(arrays, meta)``: the store arrays (with ``ids`` and ``formulas``) and ``meta`` with ``skipped`` (a
        list of ``{"file", "entry", "reason"}``), ``isolated`` (``{"index", "id", "file", "entry",
        "isolated_atoms"}`` for the structures with atoms without neighbours), ``n_read`` and ``n_kept``.

    Raises:
        StructureError: the first bad entry (``on_error="raise"``), or every entry bad (``on_error="skip"``).
    """
    settings = BuildSettings(float(cutoff), tuple(targets), on_error, require_neighbours, store, group_key)
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if len(entries) >= 4000 else 1
    if workers > 1 and "fork" in mp.get_all_start_methods():
        global _SHARED
        _SHARED = (entries, settings)  # inherited by the forked workers, so entries are never pickled
        bounds = np.linspace(0, len(entries), 4 * workers + 1).astype(int)
        try:
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
                chunks = list(pool.map(_build_range, bounds[:-1], bounds[1:]))
        except BrokenProcessPool as error:  # a worker killed from outside: an error, never a hang
            raise RuntimeError(f"a process building {source or 'the structures'} died ({error})") from error
        finally:
            _SHARED = None
    else:
        chunks = [build_chunk(entries, settings)]
    for chunk in chunks:
        if isinstance(chunk, StructureError):
            raise chunk
    arrays = merge_arrays([chunk[0] for chunk in chunks], list(targets))
    meta = {key: [v for chunk in chunks for v in chunk[1][key]] for key in ("skipped", "skipped_ids")}
    meta["isolated"], offset = [], 0
    for part_arrays, part in chunks:
        meta["isolated"] += [{**record, "index": record["index"] + offset} for record in part["isolated"]]
        offset += len(part_arrays["atom_ptr"]) - 1
    if offset == 0:
        raise all_bad_error(meta["skipped"], len(entries), source)
    if meta["skipped"]:
        log.warning("skipped %d of %d entries of %s (bad input)", len(meta["skipped"]), len(entries), source)
    ids = unique_ids(decode(arrays.pop("raw_ids")), decode(arrays.pop("hashes")), meta.pop("skipped_ids"))
    arrays["ids"] = string_array(ids)
    for record in meta["isolated"]:
        record["id"] = ids[record["index"]]
    return arrays, {**meta, "n_read": len(entries), "n_kept": len(ids)}


def all_bad_error(skipped: list[dict], n_read: int, source: str) -> StructureError:
    """The error of a source whose every entry is bad, naming the first one."""
    first = skipped[0] if skipped else {"file": source, "entry": None, "reason": "no structures"}
    return StructureError(
        f"all {n_read} entries are bad, nothing to load (first: entry {first['entry']}: {first['reason']})",
        source=first["file"] or source,
    )


def unique_ids(ids: list[str], hashes: list[str], skipped_ids: list[str]) -> list[str]:
    """Make the kept structures' ids unique in a way that does not depend on which entries were kept.

    An id that several read entries share (e.g. every frame of a trajectory named after its file) becomes
    ``"<id>@<hash>"``, with the hash of the structure's atomic numbers, positions and cell; exact copies
    under one id are then numbered ``"~2"``, ``"~3"`` in reading order. Whether an id is shared is decided
    over every read entry, bad ones included, so skipping an entry or changing the cutoff renames no other.

    Args:
        ids: the kept structures' read ids [S] (see :func:`read_id`).
        hashes: their content hashes [S] (see :func:`content_hash`).
        skipped_ids: the read ids of the entries left out.
    """
    counts = Counter(ids)
    counts.update(skipped_ids)
    shared = {entry_id for entry_id, count in counts.items() if count > 1}
    out = [f"{entry_id}@{hashes[k]}" if entry_id in shared else entry_id for k, entry_id in enumerate(ids)]
    if len(set(out)) == len(out):
        return out
    seen: set[str] = set()
    for k, entry_id in enumerate(out):
        name, copy = entry_id, 1
        while name in seen:
            copy += 1
            name = f"{entry_id}~{copy}"
        seen.add(name)
        out[k] = name
    return out


def content_hash(z: np.ndarray, pos: np.ndarray, cell: np.ndarray) -> str:
    """12 hex digits of the float64 atomic numbers, positions and cell (as read, before any rounding)."""
    digest = hashlib.sha256()
    for part in (z, pos, cell):
        digest.update(np.ascontiguousarray(part, dtype=np.float64).tobytes())
    return digest.hexdigest()[:12]


_SHARED = None


def _build_range(start: int, stop: int):
    entries, settings = _SHARED
    return build_chunk(entries[start:stop], settings)


def build_chunk(entries: Iterable[Entry], settings: BuildSettings):
    """Serial build of some entries.

    Returns:
        ``(arrays, meta)``: store arrays plus ``raw_ids`` (read ids) and ``hashes`` (content hashes) [S]
        bytes, and ``meta`` with ``skipped``, ``skipped_ids``, ``isolated`` (indices within this chunk) and
        ``n_read``; or, with ``on_error="raise"``, the located :class:`StructureError` of the first bad entry.
    """
    graph = settings.store == "graph"
    builder = StoreBuilder(list(settings.targets), edges=graph)
    full = graph or settings.require_neighbours
    search = NeighbourSearch(settings.cutoff if full else CHECK_CUTOFF)
    meta = {"skipped": [], "skipped_ids": [], "isolated": [], "n_read": 0}
    ids, hashes, formulas, groups = [], [], [], []
    for entry in entries:
        meta["n_read"] += 1
        try:
            crystal, edge_index, shift, values = _process(entry, settings, search, full)
            if settings.group_key is not None:
                groups.append(_group(entry, settings.group_key))
        except StructureError as error:
            if settings.on_error == "raise":
                return error.located(entry.source, entry_label(entry))
            meta["skipped"].append(
                {"file": entry.source, "entry": entry_label(entry), "reason": error.reason}
            )
            meta["skipped_ids"].append(read_id(entry))
            continue
        if graph:
            isolated = len(crystal.z) - len(np.unique(edge_index[1]))
            if isolated:
                meta["isolated"].append(
                    {
                        "index": len(ids),
                        "file": entry.source,
                        "entry": entry_label(entry),
                        "isolated_atoms": isolated,
                    }
                )
        ids.append(read_id(entry))
        hashes.append(content_hash(crystal.z, crystal.pos, crystal.cell))
        formulas.append(reduced_formula(crystal.z))
        builder.add(crystal, edge_index, shift, values)
    arrays = builder.finish()
    arrays.update(raw_ids=string_array(ids), hashes=string_array(hashes), formulas=string_array(formulas))
    if settings.group_key is not None:
        arrays["groups"] = string_array(groups)
    return arrays, meta


def _group(entry: Entry, key: str) -> str:
    """The entry's text label ``key`` (its group), or bad input naming the labels it has."""
    value = entry.labels.get(key)
    if value is None:
        raise StructureError(f"no {key!r} label to group by (text labels: {sorted(entry.labels) or 'none'})")
    return value


def _process(entry: Entry, settings: BuildSettings, search, full: bool):
    if entry.error is not None:
        raise StructureError(entry.error)
    crystal = to_arrays(entry.structure)
    # the search finds (and names) atoms closer than 0.5 Å in both stores
    cutoff = settings.cutoff if full else CHECK_CUTOFF
    edge_index, shift = graph_edges(crystal, cutoff, search, settings.require_neighbours)
    values = {name: _target(entry, name, len(crystal.z)) for name in settings.targets}
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
    """pymatgen's reduced formula of a set of atomic numbers (memoised by composition).

    The same rule as ``Composition.reduced_formula`` (elements by electronegativity, then symbol; the last
    two as a polyanion when their electronegativities are close; pymatgen's special formulas), for integer
    amounts, without building pymatgen objects (that cost more than reading the structure).
    """
    counts = np.bincount(np.asarray(z, dtype=np.int64))
    numbers = np.flatnonzero(counts)
    key = (numbers.tobytes(), counts[numbers].tobytes())
    formula = _FORMULAS.get(key)
    if formula is None:
        symbols, order, electronegativity, special = _element_tables()
        amounts = {symbols[n]: int(c) for n, c in zip(numbers.tolist(), counts[numbers].tolist())}
        formula, _ = _reduce(amounts, order, electronegativity)
        formula = special.get(formula, formula)
        _FORMULAS[key] = formula
    return formula


def _reduce(amounts: dict[str, int], order: dict, electronegativity: dict) -> tuple[str, int]:
    """pymatgen's ``reduce_formula`` for integer amounts: ``(formula, factor)``."""
    symbols = sorted(amounts, key=order.__getitem__)
    factor = math.gcd(*amounts.values())
    polyanion = ""
    # NaN electronegativities (noble gases) compare False, as in pymatgen
    if len(symbols) >= 3 and electronegativity[symbols[-1]] - electronegativity[symbols[-2]] < 1.65:
        inner, inner_factor = _reduce(
            {s: amounts[s] // factor for s in symbols[-2:]}, order, electronegativity
        )
        if inner_factor != 1:
            polyanion, symbols = f"({inner}){inner_factor}", symbols[:-2]
    parts = [s + (str(amounts[s] // factor) if amounts[s] != factor else "") for s in symbols]
    return "".join(parts) + polyanion, factor


_TABLES: tuple | None = None


def _element_tables() -> tuple[list[str], dict, dict, dict]:
    """Symbols by atomic number, pymatgen's sort keys and electronegativities, and its special formulas."""
    global _TABLES
    if _TABLES is None:
        from ase.data import chemical_symbols
        from pymatgen.core import Element
        from pymatgen.core.composition import Composition

        electronegativity = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # noble gases lack electronegativities
            for symbol in chemical_symbols[1:119]:
                electronegativity[symbol] = float(Element(symbol).X)
        order = {s: (math.inf if math.isnan(x) else x, s) for s, x in electronegativity.items()}
        _TABLES = (chemical_symbols, order, electronegativity, dict(Composition.special_formulas))
    return _TABLES
