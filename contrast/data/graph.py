"""Periodic crystal graphs: structure -> ``torch_geometric.data.Data`` following the graph contract.

The neighbour list is full (both directions), periodic, includes every image within the cutoff (also when the
cutoff is longer than a cell edge) and excludes an atom's own zero-shift image. Edge vectors are never stored:
``vec_ij = pos[j] - pos[i] + cell_shift @ cell`` with ``edge_index = [j, i]`` (source, target).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch_geometric.data import Data
from vesin import NeighborList

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
    if isinstance(structure, CrystalArrays):
        z, pos, cell = structure.z, structure.pos, structure.cell
    elif hasattr(structure, "get_atomic_numbers") and hasattr(structure, "get_cell"):  # ase.Atoms
        if not all(structure.pbc):
            raise StructureError(
                f"not periodic in all three directions (pbc={list(map(bool, structure.pbc))})"
            )
        z = structure.get_atomic_numbers()
        pos = structure.get_positions()
        cell = np.asarray(structure.get_cell()[:])
    elif hasattr(structure, "lattice") and hasattr(structure, "sites"):  # pymatgen Structure
        z, frac = _pymatgen_sites(structure.sites)
        cell = structure.lattice.matrix
        pos = frac @ cell
    elif hasattr(structure, "cart_coords"):  # pymatgen Molecule
        raise StructureError("a non-periodic molecule, not a crystal")
    else:
        raise StructureError(f"unsupported structure type {type(structure).__name__}")
    z = np.array(z, dtype=np.int64)
    pos = np.array(pos, dtype=np.float64).reshape(-1, 3)
    cell = np.array(cell, dtype=np.float64).reshape(3, 3)
    _check_arrays(z, pos, cell)
    return CrystalArrays(z, pos, cell)


def _pymatgen_sites(sites) -> tuple[list[int], np.ndarray]:
    """Atomic numbers and fractional coordinates in one pass (pymatgen's per-site properties are slow)."""
    z = []
    for site in sites:
        species = site.species
        if len(species) != 1:
            raise StructureError("disordered site (partial occupancy); order the structure first")
        ((specie, amount),) = species.items()
        if amount != 1:
            raise StructureError("disordered site (partial occupancy); order the structure first")
        number = getattr(specie, "Z", 0)
        if type(specie).__name__ == "DummySpecies" or not 1 <= number <= 118:
            raise StructureError(f"dummy or unknown species {specie!s}")
        z.append(number)
    return z, np.array([site.frac_coords for site in sites], dtype=np.float64).reshape(-1, 3)


def _check_arrays(z: np.ndarray, pos: np.ndarray, cell: np.ndarray) -> None:
    # Cheap tests first (this runs once per structure and view); the detailed diagnosis only on failure.
    if len(z) == 0:
        raise StructureError("no atoms")
    if len(z) != len(pos):
        raise StructureError(f"{len(z)} atomic numbers but {len(pos)} positions")
    if z.min() < 1 or z.max() > 118:
        raise StructureError(f"unknown element with atomic number {int(z[(z < 1) | (z > 118)][0])}")
    (a, b, c), (d, e, f), (g, h, i) = cell.tolist()
    volume = abs(a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g))
    if not math.isfinite(float(pos.sum()) + volume):  # NaN or inf anywhere in pos or cell
        if not np.isfinite(pos).all():
            raise StructureError("NaN or infinite coordinates")
        raise StructureError("NaN or infinite lattice vectors")
    if volume < MIN_VOLUME_PER_ATOM * len(z):
        raise StructureError(f"zero-volume or degenerate cell (volume {volume:.3g} Å^3)")


def neighbour_list(
    pos: np.ndarray, cell: np.ndarray, cutoff: float, calculator: NeighborList | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full periodic neighbour list with vesin.

    Returns:
        ``(i, j, shift, distance)``: targets [E], sources [E], integer image shifts [E, 3] and distances [E],
        with ``pos[j] - pos[i] + shift @ cell`` the vector from i to its neighbour.
    """
    calculator = calculator or NeighborList(cutoff=cutoff, full_list=True)
    i, j, shift, distance = calculator.compute(points=pos, box=cell, periodic=True, quantities="ijSd")
    return i, j, shift, distance


def graph_edges(
    crystal: CrystalArrays,
    cutoff: float,
    calculator: NeighborList | None = None,
    require_neighbours: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Checked neighbour list of a crystal as plain arrays.

    Returns:
        ``(edge_index, shift)``: [2, E] source/target atom indices (``[j, i]``) and [E, 3] integer image
        shifts.

    Raises:
        StructureError: atoms closer than 0.5 Å, or (with ``require_neighbours``) an atom without neighbours.
    """
    i, j, shift, distance = neighbour_list(crystal.pos, crystal.cell, cutoff, calculator)
    if len(distance) and distance.min() < MIN_DISTANCE:
        k = int(distance.argmin())
        raise StructureError(
            f"atoms {int(i[k])} and {int(j[k])} are {distance[k]:.3f} Å apart (closer than {MIN_DISTANCE} Å)"
        )
    if require_neighbours:
        counts = np.bincount(i, minlength=len(crystal.z))
        if (counts == 0).any():
            lonely = int(np.flatnonzero(counts == 0)[0])
            raise StructureError(f"atom {lonely} has no neighbour within the cutoff of {cutoff} Å")
    edge_index = np.empty((2, len(i)), dtype=np.int64)
    edge_index[0], edge_index[1] = j, i
    return edge_index, shift


def arrays_to_graph(
    crystal: CrystalArrays,
    cutoff: float,
    calculator: NeighborList | None = None,
    require_neighbours: bool = True,
    dtype: torch.dtype | None = None,
) -> Data:
    """Build the contract ``Data`` from checked arrays (see module docstring).

    ``dtype`` is the float type of ``pos``, ``cell`` and ``cell_shift`` (torch's default when None); pass
    ``torch.float64`` for finite-difference checks, so that positions keep their full precision.
    """
    edge_index, shift = graph_edges(crystal, cutoff, calculator, require_neighbours)
    n = len(crystal.z)
    # One conversion for all float fields (it dominates the cost of small graphs), then views into it.
    floats = np.concatenate((crystal.pos.ravel(), crystal.cell.ravel(), shift.ravel()))
    floats = torch.from_numpy(floats).to(dtype or torch.get_default_dtype())
    return Data(
        z=torch.from_numpy(crystal.z),
        pos=floats[: 3 * n].view(n, 3),
        cell=floats[3 * n : 3 * n + 9].view(1, 3, 3),
        edge_index=torch.from_numpy(edge_index),
        cell_shift=floats[3 * n + 9 :].view(-1, 3),
    )


def structure_to_graph(
    structure, cutoff: float = 5.0, require_neighbours: bool = True, dtype: torch.dtype | None = None
) -> Data:
    """Turn a pymatgen ``Structure`` or an ``ase.Atoms`` into a periodic crystal graph.

    Args:
        structure: the crystal.
        cutoff: neighbour cutoff radius in Å.
        require_neighbours: raise when an atom has no neighbour within the cutoff.
        dtype: float type of ``pos``, ``cell`` and ``cell_shift`` (torch's default when None).

    Returns:
        ``Data`` with ``z`` [N], ``pos`` [N, 3], ``cell`` [1, 3, 3], ``edge_index`` [2, E] and
        ``cell_shift`` [E, 3].

    Raises:
        StructureError: the structure cannot be a crystal graph; the message says why.
    """
    calculator = _calculator(cutoff)
    return arrays_to_graph(to_arrays(structure), cutoff, calculator, require_neighbours, dtype)


_CALCULATORS = threading.local()


def _calculator(cutoff: float) -> NeighborList:
    """A vesin calculator per thread and cutoff, reused across calls (creating one has a cost)."""
    cache = _CALCULATORS.__dict__.setdefault("by_cutoff", {})
    if cutoff not in cache:
        cache[cutoff] = NeighborList(cutoff=cutoff, full_list=True)
    return cache[cutoff]


def structures_to_graphs(
    structures: Iterable, cutoff: float = 5.0, require_neighbours: bool = True, source: str | None = None
) -> list[Data]:
    """Batched :func:`structure_to_graph`: one vesin calculator serves every structure.

    Raises:
        StructureError: naming the ``source`` and the entry index of the first bad structure.
    """
    calculator = NeighborList(cutoff=cutoff, full_list=True)
    graphs = []
    for index, structure in enumerate(structures):
        try:
            graphs.append(arrays_to_graph(to_arrays(structure), cutoff, calculator, require_neighbours))
        except StructureError as error:
            raise error.located(source, index) from None
    return graphs
