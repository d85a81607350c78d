"""A source as a stream of shards: bounded groups of entries, cut at the same places on every run.

Extended XYZ files, the format of large datasets, are never read whole: :func:`extxyz_chunks` decompresses
and splits them into frames block by block, and hands on the text of ``shard_size`` frames at a time,
which the worker that builds the shard parses with the fast reader (:mod:`contrast.data.io.extxyz`). Shard
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

from contrast.data.io.entry import Entry
from contrast.data.io.readers import (
    READ_ERRORS,
    SourceSpec,
    TextStream,
    is_extxyz,
    read_entries,
    read_extxyz_text,
    read_file,
)

__all__ = ["ShardJob", "extxyz_chunks", "iter_jobs", "job_entries"]

BLOCK_CHARS = 1 << 22  # bytes read (and decompressed) at a time


@dataclass
class ShardJob:
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


def job_entries(task: ShardJob) -> Iterator[Entry]:
    """The entries of a task, parsed one text part at a time (never all frames of a shard at once)."""
    if task.entries is not None:
        yield from task.entries
    for first, text in task.parts:
        yield from read_extxyz_text(task.path, text, first_index=first)
    if task.failure is not None:
        yield Entry(task.path, task.failure[0], error=task.failure[1])


def iter_jobs(spec: SourceSpec, shard_size: int, max_structures: int | None = None) -> Iterator[ShardJob]:
    """The shards of a source, in reading order (at most ``max_structures`` entries in all)."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    number, remaining = 0, max_structures
    if spec.kind != "files":
        entries = read_entries(spec, max_structures)
        source = spec.files[0] if spec.files else "<memory>"
        for start in range(0, len(entries), shard_size):
            yield ShardJob(number, source, entries=entries[start : start + shard_size])
            number += 1
        return
    pending: list[Entry] = []  # entries of files other than XYZ, until a shard is full
    for path in spec.files:
        if remaining is not None and remaining <= 0:
            break
        if is_extxyz(path, spec.options.get("format")):
            if pending:
                yield ShardJob(number, pending[0].source, entries=pending)
                number, pending = number + 1, []
            for parts, failure, count in extxyz_chunks(path, shard_size, remaining):
                yield ShardJob(number, path, parts, failure)
                number += 1
                remaining = None if remaining is None else remaining - count
            continue
        entries = read_file(path, limit=remaining, **spec.options)
        entries = entries if remaining is None else entries[:remaining]
        remaining = None if remaining is None else remaining - len(entries)
        pending.extend(entries)
        while len(pending) >= shard_size:
            yield ShardJob(number, pending[0].source, entries=pending[:shard_size])
            number, pending = number + 1, pending[shard_size:]
    if pending:
        yield ShardJob(number, pending[0].source, entries=pending)


def extxyz_chunks(
    path: str, shard_size: int, limit: int | None = None
) -> Iterator[tuple[list[tuple[int, str]], tuple[int, str] | None, int]]:
    """Split an (optionally compressed) extended XYZ file into shards of ``shard_size`` frames, streaming.

    Frames are found by :func:`~contrast.data.io.extxyz.scan_frames`, block by block, exactly as in a whole
    text: a broken frame is one entry (its text goes with it, so the shard's reader finds the same break)
    and the frames after it are read. A file that cannot be read, or a compressed file that is cut, ends
    with a failure after the complete frames before the damage; so does a file that holds nothing.

    Yields:
        ``(parts, failure, count)``: ``(first frame index, text)`` parts of the shard's frames, the
        ``(entry index, reason)`` that ends the file (None while it goes on) and the entries the shard holds
        (frames, plus one for a failure).
    """
    from contrast.data.io.extxyz import scan_frames

    stream = TextStream(path, block_bytes=BLOCK_CHARS)
    parts: list[tuple[int, str]] = []
    count = index = 0
    failure: tuple[int, str] | None = None
    pending = ""  # text after the last frame scanned
    blocks = stream.blocks()
    done = False
    while not done and (limit is None or index < limit):
        try:
            block = next(blocks)
        except StopIteration:
            block, done = "", True
        except READ_ERRORS as error:
            block, done = "", True
            failure = (index, f"cannot read the file ({error})")
        lines = (pending + block).split("\n")
        tail = ""
        if not done:
            tail = lines.pop()  # it may go on in the next block
        elif stream.cut is not None or failure is not None:
            lines.pop()  # the file ended part way through it: a number may be cut short
        left = None if limit is None else limit - index
        spans, stop = scan_frames(lines, eof=done, limit=left)
        while spans:
            take, spans = spans[: shard_size - count], spans[shard_size - count :]
            parts.append((index, "\n".join(lines[take[0].start : take[-1].stop])))
            index, count = index + len(take), count + len(take)
            if count == shard_size:
                yield parts, None, count
                parts, count = [], 0
        pending = "" if done else "\n".join([*lines[stop:], tail])
    if failure is None and stream.cut is not None and (limit is None or index < limit):
        failure = (index, stream.cut)
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
