"""What a reader returns: :class:`Entry`, one structure plus its labels, or the reason it could not be read.

Both the general readers (:mod:`contrast.data.io.readers`) and the fast extended-XYZ reader
(:mod:`contrast.data.io.extxyz`) build entries, so they live here, below both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Entry", "voigt_to_matrix"]


@dataclass
class Entry:
    """One structure read from a source, or the reason it could not be read.

    Attributes:
        source: the file (or ``"<memory>"``, ``"emt"``) it came from.
        index: its position in that source.
        structure: a pymatgen ``Structure``, an ``ase.Atoms`` or
        :class:`~contrast.graph.convert.CrystalArrays`.
        properties: its labels (numbers, ``forces`` [N, 3], ``stress`` [3, 3]).
        id: its id in the source (``mp_id``, ``id``, a CSV id, a file name), None when it has none.
        error: why it could not be read (None when it was read).
        labels: its text labels (``info`` values that are strings, e.g. the ``group`` of an mlearn frame).
    """

    source: str
    index: int
    structure: Any = None
    properties: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    error: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


def voigt_to_matrix(stress) -> np.ndarray:
    """ASE Voigt stress (xx, yy, zz, yz, xz, xy) or a 3x3 matrix -> [3, 3] matrix."""
    stress = np.asarray(stress, dtype=np.float64)
    if stress.shape == (3, 3):
        return stress
    if stress.shape != (6,):
        raise ValueError(f"stress of shape {stress.shape}; expected 6 Voigt values or 3x3")
    xx, yy, zz, yz, xz, xy = stress
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
