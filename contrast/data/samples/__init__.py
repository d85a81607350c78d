"""Small structure files shipped with the package, for examples and notebooks (sources and licences in
``README.md`` next to them)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["mp_sample_path"]


def mp_sample_path() -> Path:
    """``mp_sample.extxyz.gz``: 300 Materials Project crystals (CC-BY 4.0) with ``mp_id``,
    ``e_form_per_atom`` (eV/atom) and ``band_gap`` (eV) in each frame's ``info``."""
    return Path(__file__).with_name("mp_sample.extxyz.gz")
