"""A fast reader for the common subset of extended XYZ, straight into arrays.

ASE's reader builds an ``Atoms`` and parses each comment line with general-purpose regular expressions; on
33k-frame files that dominates the first load. This reader handles what crystal datasets use (``Lattice``,
``pbc``, ``Properties`` with S/R/I/L columns, scalar and vector ``info`` values) and raises
:class:`Unsupported` for anything else, so the caller falls back to ASE. Labels follow ASE's conventions:
``energy`` / ``free_energy`` / ``stress`` in the comment line and the per-atom ``forces`` column are the
calculator results; stress is returned as a [3, 3] matrix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from ase.data import atomic_numbers

from contrast.data.io.entry import Entry, voigt_to_matrix
from contrast.graph.convert import CrystalArrays

__all__ = ["FrameSpan", "Unsupported", "read_extxyz_frames", "scan_frames"]

_PAIR = re.compile(r'(\S+?)=("(?:[^"\\]|\\.)*"|\{[^}]*\}|\S+)')
_BOOLS = {"T": True, "F": False, "True": True, "False": False}
_ID_KEYS = ("mp_id", "id", "material_id")


class Unsupported(Exception):
    """The text uses extended XYZ features this reader leaves to ASE."""


@dataclass(frozen=True)
class FrameSpan:
    """Where one frame of an (extended) XYZ text lies, as line numbers of the text split at newlines.

    Attributes:
        start: the frame's atom-count line.
        stop: one past its last line (past the lines skipped with it, for a broken frame).
        count: the atoms its count line declares (0 where there is no count line).
        error: why the frame cannot be read, or None.
    """

    start: int
    stop: int
    count: int
    error: str | None = None

    @property
    def atom_lines(self) -> slice:
        return slice(self.start + 2, self.start + 2 + self.count)


def scan_frames(
    lines: list[str], start: int = 0, eof: bool = True, limit: int | None = None
) -> tuple[list[FrameSpan], int]:
    """Find the frames of XYZ text lines from their atom-count lines, re-synchronising after a broken one.

    A frame is read as its count line, a comment line and as many atom lines as it declares. A frame is
    broken when a new frame starts among its atom lines (its count promises more lines than it has), when
    more atom lines follow its last one (it promises fewer), or when the file ends inside it; a line where a
    count line should be is skipped up to the next count line, as one broken entry. A broken frame costs only
    itself: scanning goes on at the next count line. Lines after a frame that hold as many values as its atom
    lines count as its own (its count is short); other lines there are a broken entry of their own.

    Args:
        lines: the text split at ``"\n"``.
        start: the line to start at (a count line, or blank lines before one).
        eof: whether the lines end the text. When False, scanning stops before a frame that may go on in
            lines not yet read, and returns its start.
        limit: at most this many frames (broken ones included).

    Returns:
        ``(spans, stop)``: the frames found, in order, and the line where scanning stopped.
    """
    spans: list[FrameSpan] = []
    n, i = len(lines), start
    while i < n and (limit is None or len(spans) < limit):
        if not lines[i].strip():
            i += 1
            continue
        count = _count(lines[i])
        if count is None:
            following = _next_count_line(lines, i + 1, n)
            if following is None and not eof:
                break
            stop = n if following is None else following
            reason = f"{lines[i].strip()[:40]!r} instead of an atom-count line; skipped to the next frame"
            spans.append(FrameSpan(i, stop, 0, reason))
            i = stop
            continue
        end = i + 2 + count
        inner = _next_count_line(lines, i + 2, min(end, n))
        if inner is None and end > n and not eof:
            break
        if inner is not None or end > n:  # a new frame, or the end of the text, comes too early
            stop = n if inner is None else inner
            found = max(stop - i - 2, 0)
            reason = f"truncated frame: declares {count} atoms but only {found} atom lines follow"
            spans.append(FrameSpan(i, stop, count, reason))
            i = stop
            continue
        after = end
        while after < n and not lines[after].strip():
            after += 1
        if after == n and not eof:
            break
        if after < n and _count(lines[after]) is None and _looks_like(lines[after], lines[end - 1]):
            following = _next_count_line(lines, after + 1, n)
            if following is None and not eof:
                break
            stop = n if following is None else following
            reason = f"declares {count} atoms but more atom lines follow them"
            spans.append(FrameSpan(i, stop, count, reason))
            i = stop
            continue
        spans.append(FrameSpan(i, end, count))
        i = end
    return spans, i


def _count(line: str) -> int | None:
    """The atom count of a count line (a line holding one whole number only), else None."""
    text = line.strip()
    return int(text) if text.isdigit() else None


def _looks_like(line: str, atom_line: str) -> bool:
    """Whether ``line`` holds as many values as ``atom_line`` (another atom line of the same frame)."""
    return len(line.split()) == len(atom_line.split())


def _next_count_line(lines: list[str], start: int, stop: int) -> int | None:
    for k in range(start, stop):
        if lines[k].strip().isdigit():
            return k
    return None


def read_extxyz_frames(
    text: str, source: str, stem: str, limit: int | None = None, first_index: int = 0
) -> list[Entry]:
    """Parse every frame; a frame that breaks the format gives an entry with ``error`` set, and reading goes
    on at the next frame (:func:`scan_frames`).

    ``first_index`` is the position of the text's first frame in its file (for a chunk of a streamed file):
    entries are numbered, and named when they have no id, from there.

    Raises:
        Unsupported: a feature outside the handled subset (the caller falls back to ASE).
    """
    lines = text.split("\n")
    spans, _ = scan_frames(lines, limit=limit)
    good = [span for span in spans if span.error is None]
    infos = [_parse_comment(lines[span.start + 1]) for span in good]
    specs = [info.pop("Properties", "species:S:1:pos:R:3") for info in infos]
    bulk = _bulk_columns(lines, good, specs[0]) if good and len(set(specs)) == 1 else None
    entries, k = [], 0
    for index, span in enumerate(spans, start=first_index):
        if span.error is not None:
            entries.append(Entry(source, index, id=_comment_id(lines, span), error=span.error))
            continue
        info, spec = infos[k], specs[k]
        if bulk is not None:
            offset = bulk["offsets"][k]
            arrays = {name: values[offset : offset + span.count] for name, values in bulk["columns"].items()}
        else:
            arrays = _columns(lines[span.atom_lines], _parse_properties(spec))
        entries.append(_frame(source, index, stem, info, arrays))
        k += 1
    return entries


def _comment_id(lines: list[str], span: FrameSpan) -> str | None:
    """The id a broken frame's comment line names, when it has one that parses."""
    if span.count == 0 or span.start + 1 >= len(lines):
        return None
    try:
        info = _parse_comment(lines[span.start + 1])
    except Unsupported:
        return None
    return next((str(info[key]) for key in _ID_KEYS if key in info), None)


def _bulk_columns(lines: list[str], frames: list[FrameSpan], spec: str) -> dict | None:
    """Convert all frames' atom lines at once (None when a frame's line widths differ: parse one by one)."""
    columns = _parse_properties(spec)
    body = [line for span in frames for line in lines[span.atom_lines]]
    width = sum(n for _, _, n in columns)
    tokens = " ".join(body).split()
    if len(tokens) != width * len(body):
        return None
    try:
        table = _columns_from_tokens(tokens, width, columns)
    except (ValueError, KeyError):
        return None
    if columns[0][0] == "species" and columns[0][2] == 1:  # atomic numbers of all frames at once
        table["_z"] = np.fromiter((atomic_numbers.get(s, 0) for s in tokens[0::width]), np.int64, len(body))
    offsets = np.concatenate([[0], np.cumsum([span.count for span in frames])])
    return {"columns": table, "offsets": offsets}


def _columns(body: list[str], columns: list[tuple[str, str, int]]) -> dict | str:
    """One frame's atom columns, or the reason they cannot be read."""
    width = sum(n for _, _, n in columns)
    tokens = " ".join(body).split()
    if len(tokens) != width * len(body):
        return f"atom lines hold {len(tokens)} values, expected {width * len(body)}"
    try:
        return _columns_from_tokens(tokens, width, columns)
    except (ValueError, KeyError) as error:
        return f"bad atom column ({error})"


def _columns_from_tokens(tokens: list[str], width: int, columns: list[tuple[str, str, int]]) -> dict:
    """Columns of a row-major token list (``width`` tokens per atom line), converted from the token strings
    directly (three times faster than through a numpy string table)."""
    arrays, offset = {}, 0
    for name, kind, n in columns:
        arrays[name] = _column([tokens[offset + k :: width] for k in range(n)], kind)
        offset += n
    return arrays


def _frame(source: str, index: int, stem: str, info: dict, arrays: dict | str) -> Entry:
    entry_id = next((str(info[k]) for k in _ID_KEYS if k in info), stem if index == 0 else f"{stem}#{index}")
    if isinstance(arrays, str):
        return Entry(source, index, id=entry_id, error=arrays)
    if "species" in arrays:
        z = arrays.get("_z")
        if z is None:
            z = np.array([atomic_numbers.get(s, 0) for s in arrays["species"].tolist()], dtype=np.int64)
        if not z.all():
            bad = str(arrays["species"][int(np.flatnonzero(z == 0)[0])])
            return Entry(source, index, id=entry_id, error=f"unknown element or dummy species {bad!r}")
    elif "Z" in arrays:
        z = arrays["Z"].astype(np.int64)
    else:
        raise Unsupported("no species or Z column")
    properties = {k: v for k, v in info.items() if isinstance(v, (float, int)) and not isinstance(v, bool)}
    if "stress" in info:
        stress = np.asarray(info["stress"], dtype=np.float64)
        properties["stress"] = voigt_to_matrix(stress.reshape(3, 3) if stress.size == 9 else stress)
    if "forces" in arrays:
        properties["forces"] = arrays["forces"]
    pbc = info.get("pbc", "Lattice" in info)
    if "Lattice" not in info or not np.all(pbc):
        return Entry(source, index, id=entry_id, error=f"not periodic in all three directions (pbc={pbc})")
    cell = np.asarray(info["Lattice"], dtype=np.float64).reshape(3, 3)
    labels = {k: v for k, v in info.items() if isinstance(v, str)}
    return Entry(source, index, CrystalArrays(z, arrays["pos"], cell), properties, entry_id, labels=labels)


def _parse_comment(comment: str) -> dict:
    info = {}
    for key, raw in _PAIR.findall(comment):
        if raw.startswith(("{", "[")):
            raise Unsupported(f"structured value for {key}")
        value = raw[1:-1] if raw.startswith('"') else raw
        info[key] = _value(key, value)
    return info


def _value(key: str, value: str):
    if key == "Properties":
        return value
    parts = value.split()
    if key == "pbc":
        if len(parts) != 3 or any(p not in _BOOLS for p in parts):
            raise Unsupported(f"pbc={value!r}")
        return [_BOOLS[p] for p in parts]
    if len(parts) > 1:
        try:
            return np.array(parts, dtype=np.float64)
        except ValueError:
            return value
    if value in _BOOLS:
        return _BOOLS[value]
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _parse_properties(spec: str) -> list[tuple[str, str, int]]:
    fields = spec.split(":")
    if len(fields) % 3:
        raise Unsupported(f"Properties={spec!r}")
    columns = [(fields[k], fields[k + 1], int(fields[k + 2])) for k in range(0, len(fields), 3)]
    if any(kind not in "SRIL" for _, kind, _ in columns):
        raise Unsupported(f"Properties={spec!r}")
    return columns


def _column(parts: list[list[str]], kind: str) -> np.ndarray:
    """One column group from its components' tokens: [rows] for one component, else [rows, n]."""
    if kind == "R":
        values = np.array(parts, dtype=np.float64)
    elif kind == "I":
        values = np.array(parts, dtype=np.int64)
    elif kind == "L":
        values = np.array([[_BOOLS[token] for token in part] for part in parts])
    else:
        values = np.array(parts)
    return values[0] if len(parts) == 1 else np.ascontiguousarray(values.T)
