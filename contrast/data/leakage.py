"""Leakage guard: drop pretraining structures that are the same crystal as a test structure.

"The same crystal" survives rotation, translation, atom permutation, wrapping, the choice of (super)cell and a
uniform scaling. Matching is done in three cheap-to-expensive steps, so ~30k pretraining against ~3k test
structures takes seconds: group by reduced composition (only atomic numbers needed), compare a neighbour-shell
signature within each group, and confirm the close pairs with pymatgen's ``StructureMatcher``.

The signature step is stricter than ``StructureMatcher``'s loose default tolerances: two different small
cells that happen to lie within them (RMS displacements ~0.25 (V/N)^(1/3)) are not flagged. Raise
``signature_tol`` to flag such near-duplicates too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from math import gcd
from typing import Any

import numpy as np

from contrast.data.composition import atomic_numbers
from contrast.graph.convert import CrystalArrays, StructureError, neighbour_list, to_arrays

__all__ = [
    "StructureFingerprint",
    "composition_key",
    "neighbour_signature",
    "remove_leakage",
    "structure_fingerprint",
]

NUM_NEIGHBOURS = 16
SIGNATURE_TOL = 0.05  # in units of the length per atom (V/N)^(1/3)


def composition_key(z: np.ndarray) -> tuple[tuple[int, int], ...]:
    """Reduced composition as sorted ``(Z, count)`` pairs: the same for any supercell or atom order."""
    numbers, counts = np.unique(np.asarray(z, dtype=np.int64), return_counts=True)
    divisor = 0
    for count in counts:
        divisor = gcd(divisor, int(count))
    return tuple((int(n), int(c) // divisor) for n, c in zip(numbers, counts))


def neighbour_signature(crystal: CrystalArrays, k: int = NUM_NEIGHBOURS) -> np.ndarray:
    """Per-species statistics of each atom's ``k`` nearest-neighbour distances, in units of (V/N)^(1/3).

    For every species (by increasing Z) the sorted distance lists [n_s, k] are reduced to their mean, min
    and max over atoms, which are invariant to rotation, permutation, supercells and uniform scaling.

    Returns:
        Signature [n_species * 3 * k].
    """
    n = len(crystal.z)
    length = (abs(np.linalg.det(crystal.cell)) / n) ** (1.0 / 3.0)
    factor = 2.0
    while True:
        i, _, _, distance = neighbour_list(crystal.pos, crystal.cell, factor * length)
        if np.bincount(i, minlength=n).min() >= k:
            break
        factor *= 1.3
    order = np.lexsort((distance, i))
    i, distance = i[order], distance[order] / length
    starts = np.searchsorted(i, np.arange(n))
    shells = distance[starts[:, None] + np.arange(k)[None, :]]  # [N, k]
    parts = []
    for number in np.unique(crystal.z):
        rows = shells[crystal.z == number]  # [n_s, k]
        parts += [rows.mean(axis=0), rows.min(axis=0), rows.max(axis=0)]
    return np.concatenate(parts)


@dataclass(frozen=True, eq=False)
class StructureFingerprint:
    """Cell-choice-independent description of a crystal.

    Attributes:
        formula: reduced formula, e.g. ``"ZnS"``.
        composition: reduced ``(Z, count)`` pairs, the hashable grouping key.
        spacegroup: international space-group number from spglib (``None`` if not determined).
        signature: :func:`neighbour_signature` vector.
    """

    formula: str
    composition: tuple[tuple[int, int], ...]
    spacegroup: int | None
    signature: np.ndarray = field(repr=False)

    @property
    def key(self) -> tuple:
        """Hashable ``(composition, spacegroup)`` key; equal for copies of one crystal."""
        return (self.composition, self.spacegroup)

    def matches(self, other: StructureFingerprint, tol: float = SIGNATURE_TOL) -> bool:
        """Same composition and neighbour signatures within ``tol`` (a necessary condition for a match)."""
        return (
            self.composition == other.composition
            and float(np.abs(self.signature - other.signature).max()) <= tol
        )


def structure_fingerprint(structure: Any, symprec: float = 0.1) -> StructureFingerprint:
    """Fingerprint a pymatgen ``Structure`` or ``ase.Atoms``.

    Raises:
        StructureError: the structure is not a valid crystal (see :func:`contrast.graph.convert.to_arrays`).
    """
    import spglib
    from pymatgen.core import Composition, Element

    crystal = to_arrays(structure)
    composition = composition_key(crystal.z)
    formula = Composition({Element.from_Z(z): c for z, c in composition}).reduced_formula
    frac = np.linalg.solve(crystal.cell.T, crystal.pos.T).T  # [N, 3]
    dataset = spglib.get_symmetry_dataset((crystal.cell, frac, crystal.z), symprec=symprec)
    spacegroup = int(dataset.number) if dataset is not None else None
    return StructureFingerprint(formula, composition, spacegroup, neighbour_signature(crystal))


def _pymatgen(crystal: CrystalArrays):
    from pymatgen.core import Lattice, Structure

    return Structure(Lattice(crystal.cell), crystal.z.tolist(), crystal.pos, coords_are_cartesian=True)


class _Prepared:
    """Lazily converted views of one structure set, so only candidates are ever fingerprinted."""

    def __init__(self, structures: Sequence[Any], name: str):
        self.structures, self.name = structures, name
        self._arrays: dict[int, CrystalArrays] = {}
        self._signature: dict[int, np.ndarray] = {}
        self._pymatgen: dict[int, Any] = {}

    def arrays(self, index: int) -> CrystalArrays:
        if index not in self._arrays:
            try:
                self._arrays[index] = to_arrays(self.structures[index])
            except StructureError as error:
                raise error.located(self.name, index) from None
        return self._arrays[index]

    def signature(self, index: int) -> np.ndarray:
        if index not in self._signature:
            self._signature[index] = neighbour_signature(self.arrays(index))
        return self._signature[index]

    def structure(self, index: int):
        if index not in self._pymatgen:
            self._pymatgen[index] = _pymatgen(self.arrays(index))
        return self._pymatgen[index]


def _key(structure: Any, name: str, index: int) -> tuple:
    z = atomic_numbers(structure)
    if z.size == 0:
        raise StructureError("no atoms", name, index)
    return composition_key(z)


def remove_leakage(
    pretrain_structures: Sequence[Any],
    test_structures: Sequence[Any],
    signature_tol: float = SIGNATURE_TOL,
    confirm: bool = True,
    matcher: Any = None,
) -> tuple[np.ndarray, int]:
    """Indices of the pretraining structures to keep: those matching no test structure.

    Args:
        pretrain_structures: pymatgen ``Structure`` or ``ase.Atoms`` objects (indexable).
        test_structures: the held-out structures.
        signature_tol: largest signature difference still compared further.
        confirm: confirm signature matches with ``StructureMatcher`` (default tolerances, primitive cells,
            volume scaling); without it a close signature alone counts as a match.
        matcher: a configured ``pymatgen.analysis.structure_matcher.StructureMatcher`` to use instead.

    Returns:
        ``(kept_indices, n_removed)``: sorted indices into ``pretrain_structures`` [n_kept], and how many were
        removed.

    Raises:
        StructureError: naming the set (``pretrain``/``test``) and entry of a structure that is not a crystal.
    """
    if confirm and matcher is None:
        from pymatgen.analysis.structure_matcher import StructureMatcher

        matcher = StructureMatcher()
    groups: dict[tuple, list[int]] = defaultdict(list)
    for index, structure in enumerate(test_structures):
        groups[_key(structure, "test", index)].append(index)
    pretrain, test = _Prepared(pretrain_structures, "pretrain"), _Prepared(test_structures, "test")
    signatures: dict[tuple, np.ndarray] = {}
    removed = np.zeros(len(pretrain_structures), dtype=bool)
    for index, structure in enumerate(pretrain_structures):
        members = groups.get(_key(structure, "pretrain", index))
        if not members:
            continue
        key = tuple(members)
        if key not in signatures:
            signatures[key] = np.stack([test.signature(m) for m in members])  # [n_group, S]
        distance = np.abs(signatures[key] - pretrain.signature(index)).max(axis=1)  # [n_group]
        for position in np.argsort(distance):
            if distance[position] > signature_tol:
                break
            other = members[position]
            if not confirm or matcher.fit(pretrain.structure(index), test.structure(other)):
                removed[index] = True
                break
    return np.flatnonzero(~removed), int(removed.sum())
