"""A source as a stream of shards: bounded groups of entries, cut at the same places on every run.

Extended XYZ files, the format of large datasets, are never read whole: :func:`extxyz_chunks` decompresses
and splits them into frames block by block, and hands on the text of ``shard_size`` frames at a time,
which the worker that builds the shard parses with the fast reader (:mod:`contrast.data.extxyz`). Shard
``k`` of such a file holds its frames ``[k * shard_size, (k + 1) * shard_size)``, so an interrupted build
finds its finished shards again. Other files (CIF, POSCAR, ...) are read here, in order, and their entries
cut into shards of ``shard_size``; so are the entries of the other sources (CSV, CGCNN folders, ``"default"``,
``"emt"``), which are small.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from contrast.data.entry import Entry
from contrast.data.readers import (
    SourceSpec,
    is_extxyz,
    open_text,
    read_entries,
    read_extxyz_text,
    read_file,
)

__all__ = ["Task", "extxyz_chunks", "iter_tasks", "task_entries"]

BLOCK_CHARS = 1 << 22  # characters decompressed and split at a time


@dataclass
class Task:
    """The entries of one shard: extended XYZ text to parse, or entries already read.

    Attributes:
        number: the shard's position in the source (the same on every run with the same shard size).
        path: the file the entries come from.
        parts: ``(first frame index, text)`` of whole frames, a few MB each.
        failure: ``(entry index, reason)`` when the file ends in a way no frame can be read from.
        entries: entries read already (non-XYZ sources).
    """

    number: int
    path: str
    parts: list[tuple[int, str]] = field(default_factory=list)
    failure: tuple[int, str] | None = None
    entries: list[Entry] | None = None

    def size(self) -> int:
        """Characters or entries this task carries (a rough measure of its memory)."""
        return sum(len(text) for _, text in self.parts) + len(self.entries or ())


def task_entries(task: Task) -> Iterator[Entry]:
    """The entries of a task, parsed one text part at a time (never all frames of a shard at once)."""
    if task.entries is not None:
        yield from task.entries
    for first, text in task.parts:
        yield from read_extxyz_text(task.path, text, first_index=first)
    if task.failure is not None:
        yield Entry(task.path, task.failure[0], error=task.failure[1])


def iter_tasks(spec: SourceSpec, shard_size: int, max_structures: int | None = None) -> Iterator[Task]:
    """The shards of a source, in reading order (at most ``max_structures`` entries in all)."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    number, remaining = 0, max_structures
    if spec.kind != "files":
        entries = read_entries(spec, max_structures)
        source = spec.files[0] if spec.files else "<memory>"
        for start in range(0, len(entries), shard_size):
            yield Task(number, source, entries=entries[start : start + shard_size])
            number += 1
        return
    pending: list[Entry] = []  # entries of files other than XYZ, until a shard is full
    for path in spec.files:
        if remaining is not None and remaining <= 0:
            break
        if is_extxyz(path, spec.options.get("format")):
            if pending:
                yield Task(number, pending[0].source, entries=pending)
                number, pending = number + 1, []
            for parts, failure, count in extxyz_chunks(path, shard_size, remaining):
                yield Task(number, path, parts, failure)
                number += 1
                remaining = None if remaining is None else remaining - count
            continue
        entries = read_file(path, limit=remaining, **spec.options)
        entries = entries if remaining is None else entries[:remaining]
        remaining = None if remaining is None else remaining - len(entries)
        pending.extend(entries)
        while len(pending) >= shard_size:
            yield Task(number, pending[0].source, entries=pending[:shard_size])
            number, pending = number + 1, pending[shard_size:]
    if pending:
        yield Task(number, pending[0].source, entries=pending)


def extxyz_chunks(
    path: str, shard_size: int, limit: int | None = None
) -> Iterator[tuple[list[tuple[int, str]], tuple[int, str] | None, int]]:
    """Split an (optionally compressed) extended XYZ file into shards of ``shard_size`` frames, streaming.

    Frames are found from their atom-count lines exactly as :func:`~contrast.data.extxyz.split_frames`
    finds them in a whole text; an unreadable count line or a truncated last frame ends the file with a
    failure, as does a file that cannot be read or holds nothing.

    Yields:
        ``(parts, failure, count)``: ``(first frame index, text)`` parts of the shard's whole frames, the
        ``(entry index, reason)`` that ends the file (None while it goes on) and the entries the shard holds
        (frames, plus one for a failure).
    """
    parts, count, index, carry, failure = [], 0, 0, "", None
    try:
        handle = open_text(path)
    except OSError as error:
        yield [], (0, f"cannot read the file ({error})"), 1
        return
    with handle:
        eof = False
        while not eof and failure is None and (limit is None or index < limit):
            try:
                block = handle.read(BLOCK_CHARS)
            except (OSError, UnicodeDecodeError, EOFError) as error:
                failure = (index, f"cannot read the file ({error})")
                break
            eof = not block
            lines = (carry + block).split("\n")
            tail = "" if eof else lines.pop()  # a line that may go on in the next block
            start = first = 0
            part_index = index
            while start < len(lines) and (limit is None or index < limit):
                if not lines[start].strip():
                    start += 1
                    continue
                try:
                    atoms = int(lines[start].split()[0])
                except ValueError:
                    failure = (index, f"bad atom-count line {lines[start][:40]!r}")
                    break
                available = len(lines) - start - 2
                if atoms < 0 or (eof and available < atoms):
                    failure = (index, f"truncated frame: {max(available, 0)} of {atoms} atom lines")
                    break
                if available < atoms:
                    break  # the frame goes on in the next block
                start, index, count = start + atoms + 2, index + 1, count + 1
                if count == shard_size:
                    parts.append((part_index, "\n".join(lines[first:start])))
                    yield parts, None, count
                    parts, count, first, part_index = [], 0, start, index
            if index > part_index:
                parts.append((part_index, "\n".join(lines[first:start])))
            carry = "\n".join([*lines[start:], tail]) if not eof else ""
    if index == 0 and failure is None:
        failure = (0, "empty file")
    if parts or failure is not None:
        yield parts, failure, count + (failure is not None)


def source_name(source) -> str:
    """A short readable name of a source for logs and cache folders."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    items = [str(item) for item in source]
    return items[0] if len(items) == 1 else f"{Path(items[0]).name}+{len(items) - 1}"
