"""Species substitution among chemically similar elements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

import torch
from torch_geometric.data import Data

from contrast.augment._base import (
    check_fraction,
    check_probability,
    fires,
    format_repr,
    stochastic_count,
    with_structure,
)

MAX_Z = 94  # elements beyond plutonium lack the radius data the default table needs
# Radioactive elements are no useful stand-ins for the stable ones in a view (e.g. La -> Ac).
RADIOACTIVE = frozenset({43, 61, *range(84, MAX_Z + 1)})


@lru_cache(maxsize=8)
def similar_elements(radius_tolerance: float = 0.15) -> dict[int, tuple[int, ...]]:
    """Default substitution table from pymatgen's element data.

    Two elements are similar when they share group and block and their atomic radii differ by at most
    ``radius_tolerance`` relative to the larger one (e.g. Si <-> Ge, S <-> Se, Cl <-> Br, Fe <-> Ru).
    Radioactive elements (Tc, Pm, Po and heavier) are left out.

    Returns:
        ``{Z: (Z', ...)}`` for every element with at least one partner, partners in increasing Z.
    """
    from pymatgen.core.periodic_table import Element

    props = {}
    for number in range(1, MAX_Z + 1):
        element = Element.from_Z(number)
        if element.atomic_radius is not None and number not in RADIOACTIVE:
            props[number] = (element.group, element.block, float(element.atomic_radius))
    table = {}
    for number, (group, block, radius) in props.items():
        partners = tuple(
            other
            for other, (g, b, r) in props.items()
            if other != number and (g, b) == (group, block) and _close(r, radius, radius_tolerance)
        )
        if partners:
            table[number] = partners
    return table


def _close(r: float, radius: float, tolerance: float) -> bool:
    return abs(r - radius) <= tolerance * max(r, radius)


def _atomic_number(element: int | str) -> int:
    if isinstance(element, int):
        return element
    if isinstance(element, str) and element.isdigit():
        return int(element)
    from pymatgen.core.periodic_table import Element

    return Element(element).Z


def normalise_table(table: Mapping) -> dict[int, tuple[int, ...]]:
    """Turn ``{"Si": ["Ge"], 32: [14]}``-style tables (symbols or numbers) into ``{Z: (Z', ...)}``."""
    out = {}
    for key, partners in table.items():
        if isinstance(partners, (str, int)) or not isinstance(partners, Sequence):
            raise ValueError(f"substitution table entry {key!r} must list partner elements, got {partners!r}")
        out[_atomic_number(key)] = tuple(_atomic_number(p) for p in partners)
    return out


class SpeciesSubstitution:
    """Replace the species of a random fraction of the substitutable sites by a similar element.

    Args:
        p: probability of applying the transform.
        fraction: expected fraction of the substitutable sites (those whose element has a partner) changed.
        table: ``{element: [partners]}`` with symbols or atomic numbers; None uses :func:`similar_elements`.
        radius_tolerance: relative radius tolerance of the default table.
    """

    def __init__(
        self,
        p: float = 1.0,
        fraction: float = 0.2,
        table: Mapping | None = None,
        radius_tolerance: float = 0.15,
    ):
        self.p = check_probability(p)
        self.fraction = check_fraction(fraction)
        self.radius_tolerance = float(radius_tolerance)
        self.custom_table = table is not None
        self.table = normalise_table(table) if table is not None else similar_elements(self.radius_tolerance)

    def __call__(self, data: Data, generator: torch.Generator) -> Data:
        """Return a copy of ``data`` with some species substituted (edge fields dropped)."""
        if not fires(self.p, generator):
            return data.clone()
        z = data.z.clone()
        candidates = [k for k, number in enumerate(z.tolist()) if self.table.get(number)]
        n_change = stochastic_count(self.fraction, len(candidates), generator)
        order = torch.randperm(len(candidates), generator=generator)[:n_change].tolist()
        for k in sorted(candidates[o] for o in order):
            partners = self.table[int(z[k])]
            z[k] = partners[int(torch.randint(len(partners), (), generator=generator))]
        return with_structure(data, z, data.pos.clone(), data.cell.clone())

    def __repr__(self) -> str:
        table = "custom" if self.custom_table else "default"
        return format_repr(
            "SpeciesSubstitution",
            p=self.p,
            fraction=self.fraction,
            table=table,
            radius_tolerance=self.radius_tolerance,
        )
