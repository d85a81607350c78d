"""A harmless callable with an observable side effect, named by crafted checkpoints in the safety tests."""

from __future__ import annotations

from pathlib import Path


def touch(path: str) -> str:
    """Write ``called`` into ``path``: a test that finds the file knows the callable ran."""
    Path(path).write_text("called")
    return path
