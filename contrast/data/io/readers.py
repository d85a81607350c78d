"""Readers: every supported source -> a list of :class:`Entry` (a structure plus its labels).

Supported sources (see :func:`resolve_source`):

- any file ASE reads (extxyz, POSCAR, ...) and CIF files (read with pymatgen, which keeps partial
  occupancies visible), optionally compressed (``.gz``, ``.bz2``, ``.xz``); a compressed file is
  decompressed into memory in one streaming pass and then parsed, because ASE seeks inside gzip streams
  (quadratic time);
- a glob of such files, or a folder of them;
- a CSV with a CIF column plus property columns (CDVAE / matbench style);
- a folder of CIFs with ``id_prop.csv`` (CGCNN style: rows ``id,value``; the value is the target ``target``);
- ``"default"``: the AFLOW prototype library bundled with pymatgen (288 structures, no download);
- ``"emt"``: structures labelled with ASE's EMT calculator (:func:`contrast.data.io.emt.emt_structures`);
- a list of pymatgen ``Structure`` / ``ase.Atoms`` objects in memory.

A reader never raises for one bad entry: it returns an :class:`Entry` with ``error`` set, so the dataset
builder can raise or skip it with the file and entry named.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import glob
import gzip
import io
import lzma
import os
import re
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from contrast.data.io.entry import Entry, voigt_to_matrix

__all__ = [
    "Entry",
    "SourceSpec",
    "resolve_source",
    "read_entries",
    "read_file",
    "read_extxyz_text",
    "is_extxyz",
    "open_text",
    "TextStream",
    "READ_ERRORS",
    "atoms_properties",
    "voigt_to_matrix",
]

_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_DECOMPRESSORS = {
    ".gz": lambda: zlib.decompressobj(wbits=31),  # one gzip member
    ".bz2": bz2.BZ2Decompressor,
    ".xz": lzma.LZMADecompressor,
}
# What reading a damaged or undecodable file raises.
READ_ERRORS = (OSError, EOFError, UnicodeDecodeError, zlib.error, lzma.LZMAError)
CUT_REASON = "the compressed file is cut: it ends before its end-of-stream marker"
_STRUCTURE_SUFFIXES = (".cif", ".extxyz", ".xyz", ".vasp", ".poscar")
_STRUCTURE_NAMES = ("POSCAR", "CONTCAR")
_ID_COLUMNS = ("material_id", "mp_id", "id", "name")


@dataclass
class SourceSpec:
    """What a source is: its kind, the files it covers and the reader options that shape its entries."""

    kind: str  # "files" | "csv" | "cgcnn" | "default" | "emt" | "memory"
    files: list[str]
    options: dict[str, Any]
    items: list | None = None  # in-memory structures

    def read_files(self) -> list[str]:
        """Every file reading this source opens (what its cache key must cover): a CGCNN folder's
        ``id_prop.csv`` and its CIFs, else :attr:`files`."""
        if self.kind != "cgcnn":
            return list(self.files)
        folder = Path(self.files[0]).parent
        return [self.files[0], *sorted(str(p) for p in folder.iterdir() if p.suffix.lower() == ".cif")]


def resolve_source(source: Any, **options: Any) -> SourceSpec:
    """Classify a source and list its files (used for reading and for the cache key).

    A list of paths (files, folders, globs) is one source of all their files, in order; any other list holds
    structures in memory.

    Raises:
        FileNotFoundError: a path or glob that matches nothing.
    """
    if isinstance(source, Sequence) and not isinstance(source, (str, bytes)):
        items = list(source)
        if not items or not all(isinstance(item, (str, os.PathLike)) for item in items):
            return SourceSpec("memory", [], options, items)
        files = []
        for item in items:  # several files, folders or globs: one dataset, in the given order
            part = resolve_source(item, **options)
            if part.kind != "files":
                raise ValueError(
                    f"{item}: a list of sources may name structure files, folders of them and globs, "
                    f"not a {part.kind} source"
                )
            files.extend(part.files)
        return SourceSpec("files", files, options)
    source = os.fspath(source)
    if source == "default":
        return SourceSpec("default", [_aflow_prototypes_path()], options)
    if source == "emt":
        from contrast.data.io import emt

        return SourceSpec("emt", [emt.__file__], options)
    if any(char in source for char in "*?["):
        files = sorted(glob.glob(os.path.expanduser(source), recursive=True))
        if not files:
            raise FileNotFoundError(f"no file matches the pattern {source}")
        return SourceSpec("files", files, options)
    path = Path(source).expanduser()
    if path.is_dir():
        if (path / "id_prop.csv").exists():
            return SourceSpec("cgcnn", [str(path / "id_prop.csv")], options)
        files = sorted(str(p) for p in path.iterdir() if _is_structure_file(p.name))
        if not files:
            raise FileNotFoundError(f"folder {path} holds no structure files or id_prop.csv")
        return SourceSpec("files", files, options)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    kind = "csv" if _strip_compression(path.name).lower().endswith(".csv") else "files"
    return SourceSpec(kind, [str(path)], options)


def read_entries(spec: SourceSpec, max_structures: int | None = None) -> list[Entry]:
    """Read every entry of a resolved source (at most ``max_structures``)."""
    if spec.kind == "memory":
        entries = [_entry_from_object("<memory>", k, item) for k, item in enumerate(spec.items)]
    elif spec.kind == "default":
        entries = _read_default(spec.files[0])
    elif spec.kind == "emt":
        from contrast.data.io.emt import emt_structures

        structures = emt_structures(**spec.options)
        entries = [_entry_from_object("emt", k, atoms) for k, atoms in enumerate(structures)]
    elif spec.kind == "csv":
        entries = _read_csv(spec.files[0], **spec.options)
    elif spec.kind == "cgcnn":
        entries = _read_cgcnn(spec.files[0])
    else:
        entries = []
        for path in spec.files:
            remaining = None if max_structures is None else max_structures - len(entries)
            if remaining is not None and remaining <= 0:
                break
            entries.extend(read_file(path, limit=remaining, **spec.options))
    return entries if max_structures is None else entries[:max_structures]


def read_file(path: str, limit: int | None = None, format: str | None = None) -> list[Entry]:
    """Read all structures of one file (compressed or not); an unparsable file gives one failed entry."""
    name = _strip_compression(os.path.basename(path))
    compressed = name != os.path.basename(path)
    if format is None:
        format = _guess_format(name)
    text, cut = None, None
    if compressed or format in ("cif", "extxyz"):
        stream = TextStream(path)
        try:
            text = "".join(stream.blocks())
        except READ_ERRORS as error:
            return [Entry(path, 0, error=f"cannot read the file ({error})")]
        cut = stream.cut
        if cut is not None:
            text = text[: text.rfind("\n") + 1]  # a line the cut ended part way may hold a cut number
        if not text.strip():
            return [Entry(path, 0, error=cut or "empty file")]
    elif os.path.getsize(path) == 0:
        return [Entry(path, 0, error="empty file")]
    entries = _parse_file(path, name, format, text, limit)
    if cut is not None and (limit is None or len(entries) < limit):
        entries.append(Entry(path, len(entries), error=cut))  # the complete frames before the cut are kept
    return entries


def _parse_file(path: str, name: str, format: str | None, text: str | None, limit: int | None) -> list[Entry]:
    """The entries of one file's text (or of the file itself, for uncompressed formats ASE reads)."""
    try:
        if format == "cif":
            return _read_cif_text(path, text, Path(name).stem, limit)
        if format == "extxyz":
            return read_extxyz_text(path, text, limit)
        import ase.io

        handle = io.StringIO(text) if text is not None else path
        images = ase.io.read(handle, format=format, index=":")
    except Exception as error:  # the parsers raise many types; all mean "cannot parse"
        return [Entry(path, 0, error=f"cannot parse as {format} ({type(error).__name__}: {error})")]
    if not images:
        return [Entry(path, 0, error="no structure in the file")]
    return [_entry_from_object(path, k, atoms, default_id=Path(name).stem) for k, atoms in enumerate(images)]


def atoms_properties(atoms) -> dict[str, Any]:
    """Labels of an ``ase.Atoms``: numeric ``info`` values plus the calculator's energy, forces and stress.

    Stress is returned as a [3, 3] matrix in ASE's sign convention ((1/V) dE/d strain, eV/Å^3).
    """
    properties = {key: value for key, value in atoms.info.items() if _is_number(value)}
    if "forces" in atoms.arrays:
        properties["forces"] = atoms.arrays["forces"]
    results = getattr(atoms.calc, "results", None) or {}
    for key in ("energy", "forces", "stress"):
        if key in results and results[key] is not None:
            properties[key] = results[key]
    if "stress" in properties:
        properties["stress"] = voigt_to_matrix(properties["stress"])
    return properties


def _entry_from_object(source: str, index: int, item, default_id: str | None = None) -> Entry:
    if hasattr(item, "get_atomic_numbers"):  # ase.Atoms
        info = item.info
        entry_id = info.get("mp_id", info.get("id", info.get("material_id")))
        entry_id = str(entry_id) if entry_id is not None else _numbered(default_id, index)
        labels = {key: value for key, value in info.items() if isinstance(value, str)}
        return Entry(source, index, item, atoms_properties(item), entry_id, labels=labels)
    properties = dict(getattr(item, "properties", None) or {})
    entry_id = properties.get("id", properties.get("mp_id"))
    entry_id = str(entry_id) if entry_id is not None else _numbered(default_id, index)
    labels = {key: value for key, value in properties.items() if isinstance(value, str)}
    properties = {key: value for key, value in properties.items() if _is_number(value)}
    return Entry(source, index, item, properties, entry_id, labels=labels)


def _numbered(stem: str | None, index: int) -> str | None:
    if stem is None:
        return None
    return stem if index == 0 else f"{stem}#{index}"


def read_extxyz_text(path: str, text: str, limit: int | None = None, first_index: int = 0) -> list[Entry]:
    """Entries of an extended XYZ text: the whole file, or a chunk of it whose first frame is frame
    ``first_index`` of ``path`` (the fast reader, else ASE's for features outside its subset). A broken
    frame becomes one failed entry and reading goes on at the next frame."""
    from ase.io.extxyz import read_xyz

    from contrast.data.io.extxyz import Unsupported, read_extxyz_frames, scan_frames

    stem = Path(_strip_compression(os.path.basename(path))).stem
    try:
        return read_extxyz_frames(text, path, stem, limit, first_index)
    except Unsupported:
        pass
    if limit is None:
        try:  # fast path: one parse of the whole stream
            images = list(read_xyz(io.StringIO(text), index=slice(None)))
            return [_entry_from_object(path, first_index + k, atoms, stem) for k, atoms in enumerate(images)]
        except Exception:  # locate the bad frame below
            pass
    lines = text.split("\n")
    spans, _ = scan_frames(lines, limit=limit)
    entries = []
    for k, span in enumerate(spans, start=first_index):
        if span.error is not None:
            entries.append(Entry(path, k, error=span.error))
            continue
        try:
            frame = "\n".join(lines[span.start : span.stop])
            atoms = next(read_xyz(io.StringIO(frame), index=0))
        except Exception as error:
            entries.append(Entry(path, k, error=f"cannot parse frame ({type(error).__name__}: {error})"))
            continue
        entries.append(_entry_from_object(path, k, atoms, stem))
    return entries


_CIF_BLOCK = re.compile(r"^data_", re.MULTILINE)


def _read_cif_text(path: str, text: str, stem: str, limit: int | None = None) -> list[Entry]:
    """The structures of a CIF text, parsed block by block (``data_...``): a broken block is one failed entry
    and the others are kept."""
    # cut before every block but the first, so that anything before the first block stays with it
    bounds = [0, *[match.start() for match in _CIF_BLOCK.finditer(text)][1:]]
    blocks = [text[a:b] for a, b in zip(bounds, [*bounds[1:], len(text)])]
    entries = []
    for k, block in enumerate(blocks[:limit] if limit is not None else blocks):
        entry_id = _numbered(stem, k)
        structure, error = _parse_cif_block(block)
        entries.append(Entry(path, k, structure, {}, entry_id, error=error))
    return entries


def _parse_cif_block(block: str):
    """``(structure, None)`` of one CIF data block, or ``(None, reason)``."""
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            structures = CifParser.from_str(block).parse_structures(primitive=False, on_error="ignore")
        except Exception as error:
            return None, f"cannot parse CIF ({type(error).__name__}: {error})"
    if not structures:
        return None, "no structure could be parsed from the CIF block (truncated or malformed)"
    return structures[0], None


def _read_csv(path: str, cif_column: str | None = None, id_column: str | None = None) -> list[Entry]:
    with open_text(path) as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return [Entry(path, 0, error="empty file")]
    columns = list(rows[0])
    cif_column = cif_column or next((c for c in columns if c.lower() == "cif"), None)
    if cif_column not in columns:
        return [
            Entry(
                path,
                0,
                error=f"no CIF column (columns: {columns}); name it with data.cif_column=NAME "
                "(cif_column=NAME in Python)",
            )
        ]
    id_column = id_column or next((c for c in _ID_COLUMNS if c in columns), None)
    entries = []
    for k, row in enumerate(rows):
        entry_id = row.get(id_column) if id_column else str(k)
        parsed = _read_cif_text(path, row[cif_column] or "", entry_id)
        entry = parsed[0]
        entry.index, entry.id = k, entry_id
        entry.properties = {c: _to_float(v) for c, v in row.items() if c not in (cif_column, id_column)}
        entry.properties = {c: v for c, v in entry.properties.items() if v is not None}
        entries.append(entry)
    return entries


def _read_cgcnn(id_prop: str) -> list[Entry]:
    folder = os.path.dirname(id_prop)
    with open(id_prop, newline="") as handle:
        rows = [row for row in csv.reader(handle) if row]
    entries = []
    for k, row in enumerate(rows):
        cif_path = os.path.join(folder, f"{row[0].strip()}.cif")
        if not os.path.exists(cif_path):
            entries.append(Entry(id_prop, k, id=row[0], error=f"missing file {cif_path}"))
            continue
        entry = read_file(cif_path, format="cif")[0]
        entry.index, entry.id = k, row[0].strip()
        value = _to_float(row[1]) if len(row) > 1 else None
        entry.properties = {"target": value} if value is not None else {}
        entries.append(entry)
    return entries


def _aflow_prototypes_path() -> str:
    """The AFLOW prototype library shipped with pymatgen, found without importing
    ``pymatgen.analysis.prototypes`` (whose import validates every reference's BibTeX: about 20 s)."""
    import importlib.util

    spec = importlib.util.find_spec("pymatgen.analysis")
    for folder in spec.submodule_search_locations if spec else []:
        path = os.path.join(folder, "prototypes", "aflow_prototypes.json.gz")
        if os.path.exists(path):
            return path
    raise FileNotFoundError("pymatgen's bundled AFLOW prototype library is missing")


def _read_default(path: str) -> list[Entry]:
    import json

    from pymatgen.core import Structure

    with gzip.open(path, "rt") as handle:
        records = json.load(handle)
    return [
        Entry(path, k, Structure.from_dict(r["snl"]), {}, r["tags"]["aflow"]) for k, r in enumerate(records)
    ]


def is_extxyz(path: str, format: str | None = None) -> bool:
    """Whether a file is read as extended XYZ (by ``format``, else by its name)."""
    return (format or _guess_format(_strip_compression(os.path.basename(path)))) == "extxyz"


class TextStream:
    """The text of a file, plain or compressed (``.gz``, ``.bz2``, ``.xz``), in blocks, that keeps what a
    cut compressed file holds.

    Python's own decompressing readers raise at a cut and lose the block being read; here every byte that
    decompresses is handed on, and :attr:`cut` says afterwards whether the file ended early.

    Attributes:
        cut: :data:`CUT_REASON` once :meth:`blocks` has found the compressed stream cut, else None.
    """

    def __init__(self, path: str, block_bytes: int = 1 << 20):
        self.path, self.block_bytes = path, block_bytes
        self.cut: str | None = None

    def blocks(self) -> Iterator[str]:
        """The text, block by block.

        Raises:
            READ_ERRORS: a file that cannot be read, corrupt compressed data, or text that is not UTF-8.
        """
        decoder = codecs.getincrementaldecoder("utf-8")()
        make = _DECOMPRESSORS.get(Path(self.path).suffix.lower())
        with open(self.path, "rb") as raw:
            decompressor = make() if make else None
            for chunk in iter(lambda: raw.read(self.block_bytes), b""):
                while chunk:
                    if decompressor is None:
                        data, chunk = chunk, b""
                    else:
                        if decompressor.eof:  # another member of a concatenated file
                            if not chunk.strip(b"\0"):
                                break  # zero padding after the last member
                            decompressor = make()
                        data = decompressor.decompress(chunk)
                        chunk = decompressor.unused_data if decompressor.eof else b""
                    if data:
                        yield decoder.decode(data)
            if decompressor is not None and not decompressor.eof:
                self.cut = CUT_REASON
            yield decoder.decode(b"", final=not self.cut)


def open_text(path: str):
    """A text handle on a file, decompressing ``.gz``, ``.bz2`` and ``.xz`` as it reads."""
    opener = _OPENERS.get(Path(path).suffix.lower())
    if opener is None:
        return open(path, newline="")
    return opener(path, "rt", newline="")


def _strip_compression(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return name[: -len(suffix)] if suffix in _OPENERS else name


def _is_structure_file(name: str) -> bool:
    name = _strip_compression(name)
    return name.lower().endswith(_STRUCTURE_SUFFIXES) or name.startswith(_STRUCTURE_NAMES)


def _guess_format(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith(".cif"):
        return "cif"
    if lower.endswith((".xyz", ".extxyz")):
        return "extxyz"
    if lower.endswith((".vasp", ".poscar")) or name.startswith(_STRUCTURE_NAMES):
        return "vasp"
    from ase.io.formats import ioformats

    for format_name, spec in ioformats.items():  # e.g. .traj, .json, .cfg
        if any(lower.endswith("." + ext) for ext in spec.extensions):
            return format_name
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _to_float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
