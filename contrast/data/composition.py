"""Composition of crystals: atomic numbers, element counts and fractions, and element-property statistics.

One column convention everywhere: **column ``Z`` holds element ``Z``** (1..``max_z``) and column 0, which is
no element, is always zero. It is the indexing of the encoders' species embeddings and of ``EnergyHead.ref``,
both [max_z + 1], so a count matrix indexes them directly.

Element-property statistics follow Magpie (Ward et al., npj Comput. Mater. 2016): for each property ``p`` of
:data:`ELEMENT_PROPERTIES` and each structure with element fractions ``f_e``, the fraction-weighted mean
``sum_e f_e p_e``, the mean absolute deviation ``sum_e f_e |p_e - mean|``, and the minimum and maximum over
the elements present. Properties come from pymatgen's element data (covalent radii from Cordero et al. 2008,
as pymatgen ships them). Where pymatgen has no value (the electronegativity of He, Ne, Ar; the molar volume
of At and Fr; most properties of the heaviest elements) the mean of that property over the elements 1-118
that have it is used; an element without common oxidation states (noble gases, the heaviest elements) gets 0
for both oxidation-state properties.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "ELEMENT_PROPERTIES",
    "ELEMENT_STATISTICS",
    "ELEMENT_STATISTICS_NAMES",
    "MAX_Z",
    "atomic_numbers",
    "element_counts",
    "element_fractions",
    "element_property_table",
    "element_statistics",
]

MAX_Z = 118

ELEMENT_PROPERTIES = (
    "atomic_number",
    "mendeleev_number",
    "atomic_mass",  # u
    "melting_point",  # K
    "group",
    "row",
    "covalent_radius",  # Å
    "electronegativity",  # Pauling
    "s_valence",  # electrons outside the noble-gas core, per orbital type
    "p_valence",
    "d_valence",
    "f_valence",
    "valence_electrons",
    "molar_volume",  # cm^3/mol
    "max_oxidation_state",  # of the common oxidation states
    "min_oxidation_state",
)
ELEMENT_STATISTICS = ("mean", "deviation", "min", "max")
ELEMENT_STATISTICS_NAMES = tuple(
    f"{stat}_{prop}" for stat in ELEMENT_STATISTICS for prop in ELEMENT_PROPERTIES
)


def atomic_numbers(item: Any) -> np.ndarray:
    """Atomic numbers [N] (int64) of one structure.

    Args:
        item: an ``ase.Atoms``, an ordered pymatgen ``Structure``/``Molecule``, a graph with ``.z``
            (``Data``), or a sequence, array or tensor of atomic numbers.

    Raises:
        ValueError: a disordered pymatgen structure, or numbers that are not integers.
    """
    if hasattr(item, "get_atomic_numbers"):  # ase.Atoms
        z = item.get_atomic_numbers()
    elif hasattr(item, "sites") and hasattr(item, "is_ordered"):  # pymatgen Structure / Molecule
        if not item.is_ordered:
            raise ValueError("disordered sites (partial occupancies) have no atomic numbers")
        z = [site.specie.Z for site in item]
    elif hasattr(item, "z") and not isinstance(item, np.ndarray):  # torch_geometric Data, CrystalArrays
        z = item.z
    else:
        z = item
    if hasattr(z, "detach"):  # a torch tensor
        z = z.detach().cpu().numpy()
    z = np.asarray(z).reshape(-1)
    if z.size and not np.issubdtype(z.dtype, np.integer):
        if not np.issubdtype(z.dtype, np.number) or not np.array_equal(z, np.round(z)):
            raise ValueError(f"atomic numbers are not integers ({z.dtype})")
    return z.astype(np.int64)


def element_counts(items: Iterable[Any], max_z: int = MAX_Z) -> np.ndarray:
    """Atoms of each element per structure: column ``Z`` counts atomic number ``Z``, column 0 is zero.

    Args:
        items: structures, graphs or atomic-number arrays (see :func:`atomic_numbers`).
        max_z: the largest atomic number allowed.

    Returns:
        Counts [n, max_z + 1] as float64.

    Raises:
        ValueError: naming the entry: no atoms, a disordered structure, non-integer atomic numbers, or an
            atomic number outside 1..max_z.
    """
    rows = []
    for index, item in enumerate(items):
        try:
            z = atomic_numbers(item)
        except ValueError as error:
            raise ValueError(f"entry {index}: {error}") from None
        if z.size == 0:
            raise ValueError(f"entry {index}: no atoms")
        outside = z[(z < 1) | (z > max_z)]
        if outside.size:
            raise ValueError(f"entry {index}: atomic number {int(outside[0])} outside 1..{max_z}")
        rows.append(np.bincount(z, minlength=max_z + 1))
    return np.stack(rows).astype(np.float64) if rows else np.zeros((0, max_z + 1))


def element_fractions(items: Iterable[Any], max_z: int = MAX_Z) -> np.ndarray:
    """Element fractions [n, max_z + 1] (column ``Z``, column 0 zero), each row summing to one.

    Invariant to supercells and atom order. Raises as :func:`element_counts`.
    """
    counts = element_counts(items, max_z)
    return counts / counts.sum(axis=1, keepdims=True) if len(counts) else counts


def element_statistics(items: Iterable[Any]) -> np.ndarray:
    """Magpie-style statistics of element properties, weighted by element fractions.

    Args:
        items: structures, graphs or atomic-number arrays (see :func:`atomic_numbers`).

    Returns:
        Features [n, len(ELEMENT_STATISTICS_NAMES)], finite, named by :data:`ELEMENT_STATISTICS_NAMES`: the
        mean, deviation, min and max blocks, each over :data:`ELEMENT_PROPERTIES`. Invariant to supercells and
        atom order.

    Raises:
        ValueError: as :func:`element_counts`, naming the entry.
    """
    fractions = element_fractions(items)  # [n, Z + 1]
    table = element_property_table()  # [Z + 1, P]
    if not len(fractions):
        return np.zeros((0, len(ELEMENT_STATISTICS_NAMES)))
    rows, elements = np.nonzero(fractions)  # row-major, so each structure's elements are contiguous
    weights = fractions[rows, elements][:, None]  # [nnz, 1]
    values = table[elements]  # [nnz, P]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])  # every structure has an element
    mean = np.add.reduceat(weights * values, starts, axis=0)  # [n, P]
    deviation = np.add.reduceat(weights * np.abs(values - mean[rows]), starts, axis=0)
    minimum = np.minimum.reduceat(values, starts, axis=0)
    maximum = np.maximum.reduceat(values, starts, axis=0)
    return np.concatenate([mean, deviation, minimum, maximum], axis=1)


@functools.lru_cache(maxsize=1)
def element_property_table() -> np.ndarray:
    """Element properties [MAX_Z + 1, len(ELEMENT_PROPERTIES)], row ``Z``; read-only, finite, built once.

    Row 0 (no element) is zero. Missing values are filled as the module docstring says.
    """
    from pymatgen.analysis.molecule_structure_comparator import CovalentRadius
    from pymatgen.core.periodic_table import Element

    table = np.zeros((MAX_Z + 1, len(ELEMENT_PROPERTIES)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns for every missing value; they are filled below
        for z in range(1, MAX_Z + 1):
            table[z] = _element_row(Element.from_Z(z), CovalentRadius.radius)
    known = table[1:]
    fill = np.nanmean(known, axis=0)
    table[1:] = np.where(np.isnan(known), fill, known)
    table.setflags(write=False)
    return table


def _element_row(element: Any, covalent_radii: dict[str, float]) -> list[float]:
    oxidation_states = _get(element, "common_oxidation_states") or ()
    valence = _valence_electrons(_get(element, "electronic_structure"))
    return [
        element.Z,
        _number(_get(element, "mendeleev_no")),
        _number(_get(element, "atomic_mass")),
        _number(_get(element, "melting_point")),
        _number(_get(element, "group")),
        _number(_get(element, "row")),
        _number(covalent_radii.get(element.symbol)),
        _number(_get(element, "X")),
        *valence,
        sum(valence),
        _number(_get(element, "molar_volume")),
        float(max(oxidation_states, default=0)),
        float(min(oxidation_states, default=0)),
    ]


def _get(element: Any, name: str) -> Any:
    try:
        return getattr(element, name)
    except (AttributeError, KeyError, ValueError, TypeError):
        return None


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def _valence_electrons(structure: str | None) -> list[float]:
    """s, p, d, f electrons outside the noble-gas core of e.g. ``"[Ar].3d10.4s2.4p1"`` (NaN if unknown)."""
    if not structure:
        return [math.nan] * 4
    counts = dict.fromkeys("spdf", 0.0)
    for part in structure.split("."):
        if part.startswith("[") or len(part) < 3 or part[1] not in counts:
            continue
        counts[part[1]] += float(part[2:])
    return [counts[orbital] for orbital in "spdf"]
