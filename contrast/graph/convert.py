"""Periodic crystal graphs: structure -> ``torch_geometric.data.Data`` following the graph contract.

The neighbour list is full (both directions), periodic, includes every image within the cutoff (also when the
cutoff is longer than a cell edge) and excludes an atom's own zero-shift image. An atom may have no neighbour
within the cutoff (e.g. bcc Cs at 5 Å); it then has no edges, unless ``require_neighbours`` refuses it.
Edge vectors are never stored: ``vec_ij = pos[j] - pos[i] + cell_shift @ cell`` with ``edge_index = [j, i]``
(source, target).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from contrast.graph.neighbours import NeighbourSearch

__all__ = [
    "CrystalArrays",
    "StructureError",
    "to_arrays",
    "arrays_to_graph",
    "graph_edges",
    "neighbour_list",
    "structure_to_graph",
    "structures_to_graphs",
]

MIN_DISTANCE = 0.5  # Å; closer atoms are treated as a broken structure
MAX_Z = 100  # the largest atomic number the encoders embed (their default ``max_z``): Fm
MIN_VOLUME_PER_ATOM = 1e-3  # Å^3; below this the cell is degenerate


class StructureError(ValueError):
    """A structure that cannot become a crystal graph.

    Args:
        reason: what is wrong with it.
        source: the file (or other origin) it came from.
        entry: its index or id inside the source.
    """

    def __init__(self, reason: str, source: str | None = None, entry: int | str | None = None):
        self.reason = reason
        self.source = source
        self.entry = entry
        where = []
        if source is not None:
            where.append(f"file {source}")
        if entry is not None:
            where.append(f"entry {entry}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {reason}" if prefix else reason)

    def located(self, source: str | None = None, entry: int | str | None = None) -> StructureError:
        """The same error with its source and entry filled in where they were unknown."""
        return StructureError(
            self.reason,
            self.source if self.source is not None else source,
            self.entry if self.entry is not None else entry,
        )


@dataclass(frozen=True)
class CrystalArrays:
    """Plain arrays of one periodic crystal: ``z`` [N] int64, ``pos`` [N, 3] and ``cell`` [3, 3] float64."""

    z: np.ndarray
    pos: np.ndarray
    cell: np.ndarray


def to_arrays(structure) -> CrystalArrays:
    """Convert a pymatgen ``Structure``, an ``ase.Atoms`` or a :class:`CrystalArrays` into checked arrays.

    Raises:
        StructureError: for a disordered site, a dummy or unknown species, a non-periodic structure, NaN
            coordinates, a degenerate cell or atoms closer than 0.5 Å (checked later by the neighbour list).
    """
    numbers_checked = False
    if isinstance(structure, CrystalArrays):
        z = np.asarray(structure.z, dtype=np.int64)
        pos = np.asarray(structure.pos, dtype=np.float64).reshape(-1, 3)
        cell = np.asarray(structure.cell, dtype=np.float64).reshape(3, 3)
    elif hasattr(structure, "get_atomic_numbers") and hasattr(structure, "get_cell"):  # ase.Atoms
        if not all(structure.pbc):
            raise StructureError(
                f"not periodic in all three directions (pbc={list(map(bool, structure.pbc))})"
            )
        z = np.array(structure.get_atomic_numbers(), dtype=np.int64)
        pos = np.array(structure.get_positions(), dtype=np.float64).reshape(-1, 3)
        cell = np.array(structure.get_cell()[:], dtype=np.float64).reshape(3, 3)
    elif hasattr(structure, "lattice") and hasattr(structure, "sites"):  # pymatgen Structure
        sites = structure.sites
        if not sites:
            raise StructureError("no atoms")
        numbers, frac = _pymatgen_sites(sites)
        z = np.array(numbers, dtype=np.int64)
        numbers_checked = True
        cell = np.array(structure.lattice.matrix, dtype=np.float64)
        # concatenate is twice as fast as np.array on a list of small arrays
        pos = np.concatenate(frac).reshape(-1, 3) @ cell
    elif hasattr(structure, "cart_coords"):  # pymatgen Molecule
        raise StructureError("a non-periodic molecule, not a crystal")
    else:
        raise StructureError(f"unsupported structure type {type(structure).__name__}")
    _check_arrays(z, pos, cell, check_numbers=not numbers_checked)
    return CrystalArrays(z, pos, cell)


def _pymatgen_sites(sites) -> tuple[list[int], list[np.ndarray]]:
    """Atomic numbers and fractional coordinates of ordered sites, in one lean pass over them (pymatgen's
    per-site properties are slow)."""
    numbers, frac = [], []
    for site in sites:
        try:
            ((specie, amount),) = site.species.items()
        except ValueError:  # several species on one site
            amount = None
        if amount != 1:
            raise StructureError("disordered site (partial occupancy); order the structure first")
        number = specie.Z  # a DummySpecies reports the hash of its symbol
        if not 1 <= number <= 118 or type(specie).__name__ == "DummySpecies":
            raise StructureError(f"dummy or unknown species {specie!s}")
        if number > MAX_Z:
            raise _beyond_max_z(number)
        numbers.append(number)
        frac.append(site.frac_coords)
    return numbers, frac


def _check_arrays(z: np.ndarray, pos: np.ndarray, cell: np.ndarray, check_numbers: bool = True) -> None:
    # Cheap tests first (this runs once per structure and view); the detailed diagnosis only on failure.
    n = len(z)
    if n == 0:
        raise StructureError("no atoms")
    if n != len(pos):
        raise StructureError(f"{n} atomic numbers but {len(pos)} positions")
    if check_numbers and (z.min() < 1 or z.max() > MAX_Z):
        if z.min() < 1 or z.max() > 118:
            raise StructureError(f"unknown element with atomic number {int(z[(z < 1) | (z > 118)][0])}")
        raise _beyond_max_z(int(z.max()))
    (a, b, c), (d, e, f), (g, h, i) = cell.tolist()
    volume = abs(a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g))
    if not math.isfinite(pos.sum() + volume):  # NaN or inf anywhere in pos or cell
        if not np.isfinite(pos).all():
            raise StructureError("NaN or infinite coordinates")
        raise StructureError("NaN or infinite lattice vectors")
    if volume < MIN_VOLUME_PER_ATOM * n:
        raise StructureError(f"zero-volume or degenerate cell (volume {volume:.3g} Å^3)")


def _beyond_max_z(number: int) -> StructureError:
    from ase.data import chemical_symbols

    return StructureError(
        f"element {chemical_symbols[number]} (Z={number}) cannot be embedded: the encoders embed atomic "
        f"numbers 1 to {MAX_Z}"
    )


def neighbour_list(
    pos: np.ndarray, cell: np.ndarray, cutoff: float, search: NeighbourSearch | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Full periodic neighbour list with vesin (see :class:`~contrast.graph.neighbours.NeighbourSearch`).

    Returns:
        ``(i, j, shift, distance)``: targets [E], sources [E], integer image shifts [E, 3] and distances [E],
        with ``pos[j] - pos[i] + shift @ cell`` the vector from i to its neighbour.
    """
    # not the per-thread cache: callers such as the leakage guard ask for a different cutoff each time
    edge_index, shift, distance = (search or NeighbourSearch(cutoff))(pos, cell)
    return edge_index[1], edge_index[0], shift, distance


def graph_edges(
    crystal: CrystalArrays,
    cutoff: float,
    search: NeighbourSearch | None = None,
    require_neighbours: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Checked neighbour list of a crystal as plain arrays.

    Returns:
        ``(edge_index, shift)``: [2, E] source/target atom indices (``[j, i]``) and [E, 3] integer image
        shifts.

    Raises:
        StructureError: atoms closer than 0.5 Å, or (with ``require_neighbours``) an atom without neighbours.
    """
    edge_index, shift, distance = (search or _search(cutoff))(crystal.pos, crystal.cell)
    if len(distance) and distance.min() < MIN_DISTANCE:
        k = int(distance.argmin())
        raise StructureError(
            f"atoms {int(edge_index[1, k])} and {int(edge_index[0, k])} are {distance[k]:.3f} Å apart"
            f" (closer than {MIN_DISTANCE} Å)"
        )
    if require_neighbours:
        counts = np.bincount(edge_index[1], minlength=len(crystal.z))
        if (counts == 0).any():
            lonely = int(np.flatnonzero(counts == 0)[0])
            raise StructureError(f"atom {lonely} has no neighbour within the cutoff of {cutoff} Å")
    return edge_index, shift


def arrays_to_graph(
    crystal: CrystalArrays,
    cutoff: float,
    search: NeighbourSearch | None = None,
    require_neighbours: bool = False,
    dtype: torch.dtype | None = None,
    extra: dict | None = None,
) -> Data:
    """Build the contract ``Data`` from checked arrays (see module docstring).

    ``dtype`` is the float type of ``pos``, ``cell`` and ``cell_shift`` (torch's default when None); pass
    ``torch.float64`` for finite-difference checks, so that positions keep their full precision. ``extra``
    holds further fields of the graph (labels, ``idx``), stored as they are.
    """
    edge_index, shift = graph_edges(crystal, cutoff, search, require_neighbours)
    floats = _NUMPY_FLOATS[dtype or torch.get_default_dtype()]
    return contract_data(
        z=torch.from_numpy(crystal.z),
        pos=torch.from_numpy(crystal.pos.astype(floats)),  # copies, never views of the caller's arrays
        cell=torch.from_numpy(crystal.cell.astype(floats).reshape(1, 3, 3)),
        edge_index=torch.from_numpy(edge_index),
        cell_shift=torch.from_numpy(shift.astype(floats)),
        **(extra or {}),
    )


_NUMPY_FLOATS = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}


def contract_data(**fields) -> Data:
    """``Data(**fields)`` for fresh values, without PyG's per-attribute ``setattr`` dispatch.

    ``Data.__init__`` routes each keyword through two ``__setattr__`` overrides and a cache check, which costs
    more than a small crystal's neighbour search; a new ``Data`` has nothing cached, so filling its storage
    mapping directly gives the same object.
    """
    data = Data()
    mapping = getattr(data._store, "_mapping", None)
    if not isinstance(mapping, dict):  # pragma: no cover - a PyG without the storage mapping
        return Data(**fields)
    mapping.update(fields)
    return data


def structure_to_graph(
    structure: Any, cutoff: float = 5.0, require_neighbours: bool = False, dtype: torch.dtype | None = None
) -> Data:
    """Turn a pymatgen ``Structure`` or an ``ase.Atoms`` into a periodic crystal graph.

    Args:
        structure: the crystal.
        cutoff: neighbour cutoff radius in Å.
        require_neighbours: raise when an atom has no neighbour within the cutoff (by default such an atom
            is kept without edges: message passing leaves it its own embedding).
        dtype: float type of ``pos``, ``cell`` and ``cell_shift`` (torch's default when None).

    Returns:
        ``Data`` with ``z`` [N], ``pos`` [N, 3], ``cell`` [1, 3, 3], ``edge_index`` [2, E] and
        ``cell_shift`` [E, 3].

    Raises:
        StructureError: the structure cannot be a crystal graph; the message says why.
    """
    return arrays_to_graph(to_arrays(structure), cutoff, None, require_neighbours, dtype)


_SEARCHES = threading.local()


def _search(cutoff: float) -> NeighbourSearch:
    """A neighbour search per thread and cutoff, reused across calls (creating one has a cost)."""
    cache = _SEARCHES.__dict__.setdefault("by_cutoff", {})
    if cutoff not in cache:
        cache[cutoff] = NeighbourSearch(cutoff)
    return cache[cutoff]


def structures_to_graphs(
    structures: Iterable,
    cutoff: float = 5.0,
    require_neighbours: bool = False,
    source: str | None = None,
    dtype: torch.dtype | None = None,
) -> list[Data]:
    """Batched :func:`structure_to_graph`: one neighbour search serves every structure.

    Raises:
        StructureError: naming the ``source`` and the entry index of the first bad structure.
    """
    search = _search(cutoff)
    graphs = []
    for index, structure in enumerate(structures):
        try:
            graphs.append(arrays_to_graph(to_arrays(structure), cutoff, search, require_neighbours, dtype))
        except StructureError as error:
            raise error.located(source, index) from None
    return graphs
