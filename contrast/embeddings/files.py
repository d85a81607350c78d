"""Embedding files: one row per structure (id, reduced formula, embedding [D], labels), as ``.npz`` or
``.parquet``.

``.npz`` holds ``ids`` [S] and ``formulas`` [S] (unicode), ``embeddings`` [S, D] float32, one
``label.<name>`` array [S, ...] per label and ``meta``, a JSON string (checkpoint, source, shard, skipped
entries...). It loads without pickle. ``.parquet`` (needs ``pyarrow``) has the columns ``id``, ``formula``,
``embedding`` (a list of D floats) and one column per label, and the same JSON under the schema metadata key
``contrast``.

Shards written by ``python -m contrast.export shard=i/n`` are read back together, in input order, by
:func:`read_embeddings` given their paths or a glob.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMATS", "check_out_path", "read_embeddings", "write_embeddings"]

FORMATS = (".npz", ".parquet")
_COLUMNS = ("id", "formula", "embedding")


def check_out_path(out: str | os.PathLike) -> str:
    """The format (``".npz"`` or ``".parquet"``) of an output name, checked before any work is done.

    Raises:
        ValueError: another suffix.
        ImportError: ``.parquet`` without ``pyarrow``.
    """
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"out={out}: the file name must end in .npz or .parquet")
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise ImportError(
                f"out={out}: writing .parquet needs the pyarrow package (pip install pyarrow); "
                "or name the file .npz"
            ) from None
    return suffix


def write_embeddings(result: dict[str, Any], out: str | os.PathLike) -> Path:
    """Write ``result`` (``ids``, ``formulas``, ``embeddings`` [S, D], ``labels`` {name: [S, ...]}, ``meta``)
    to ``out``, atomically (a requeued job never leaves half a file).

    Returns:
        The path written.
    """
    out = Path(out)
    suffix = check_out_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {**result["meta"], "labels": {n: list(v.shape[1:]) for n, v in result["labels"].items()}}
    tmp = str(out.parent / f".{out.stem}.{os.getpid()}.tmp{suffix}")  # same folder: os.replace is atomic
    try:
        if suffix == ".npz":
            _write_npz(tmp, result, meta)
        else:
            _write_parquet(tmp, result, meta)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return out


def _write_npz(path: str, result: dict[str, Any], meta: dict) -> None:
    arrays = {
        "ids": np.asarray(result["ids"], dtype=str),
        "formulas": np.asarray(result["formulas"], dtype=str),
        "embeddings": np.asarray(result["embeddings"], dtype=np.float32),
        "meta": np.asarray(json.dumps(meta)),
    }
    arrays.update({f"label.{name}": np.asarray(v) for name, v in result["labels"].items()})
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _write_parquet(path: str, result: dict[str, Any], meta: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    embeddings = np.asarray(result["embeddings"], dtype=np.float32)
    columns = {
        "id": pa.array(list(result["ids"]), pa.string()),
        "formula": pa.array(list(result["formulas"]), pa.string()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(embeddings.reshape(-1)), embeddings.shape[1]),
    }
    for name, values in result["labels"].items():
        if name in _COLUMNS:
            raise ValueError(f"a label named {name!r} would clash with the column of that name")
        values = np.asarray(values, dtype=np.float64)
        columns[name] = pa.array(values.reshape(len(values), -1).tolist() if values.ndim > 1 else values)
    table = pa.table(columns).replace_schema_metadata({"contrast": json.dumps(meta)})
    pq.write_table(table, path)


def read_embeddings(path: str | os.PathLike | Sequence[str | os.PathLike]) -> dict[str, Any]:
    """Read an embedding file, or the shards of one in input order.

    Args:
        path: a ``.npz`` / ``.parquet`` file; a list of shard files or a glob of them (``"emb.*.npz"``), put
            in shard order and checked to be complete and from one input and encoder.

    Returns:
        ``{"ids": [S] str, "formulas": [S] str, "embeddings": float32 [S, D], "labels": {name: [S, ...]},
        "meta": dict}``; ``meta["skipped"]`` lists the input's entries left out as bad input.

    Raises:
        FileNotFoundError: no such file, or a glob that matches none.
        ValueError: not an embedding file, or shards that do not make up one whole output (named).
    """
    paths = _expand(path)
    parts = [_read_one(Path(p)) for p in paths]
    if len(parts) == 1:
        return parts[0]
    return _join_shards(parts, paths)


def _expand(path) -> list[str]:
    if isinstance(path, (str, os.PathLike)):
        if not os.path.exists(path) and glob.has_magic(str(path)):
            found = sorted(glob.glob(str(path)))
            if not found:
                raise FileNotFoundError(f"no embedding file matches {path}")
            return found
        return [os.fspath(path)]
    if not path:
        raise ValueError("read_embeddings needs at least one path")
    return [os.fspath(p) for p in path]


def _read_one(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such embedding file")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: not an embedding file (expected .npz or .parquet)")
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            if "meta" not in data or "embeddings" not in data:
                raise ValueError(f"{path}: not an embedding file written by contrast (no meta/embeddings)")
            meta = json.loads(str(data["meta"]))
            labels = {name: data[f"label.{name}"] for name in meta.get("labels", {})}
            return {
                "ids": data["ids"].tolist(),
                "formulas": data["formulas"].tolist(),
                "embeddings": data["embeddings"],
                "labels": labels,
                "meta": meta,
            }
    check_out_path(path)  # pyarrow present
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(b"contrast")
    if raw is None:
        raise ValueError(f"{path}: not an embedding file written by contrast (no 'contrast' metadata)")
    meta = json.loads(raw)
    dim = int(meta["embedding_dim"])
    flat = table.column("embedding").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    labels = {}
    for name, shape in meta.get("labels", {}).items():
        column = table.column(name).combine_chunks()
        values = column.flatten() if shape else column
        labels[name] = values.to_numpy(zero_copy_only=False).reshape(len(table), *shape)
    return {
        "ids": table.column("id").to_pylist(),
        "formulas": table.column("formula").to_pylist(),
        "embeddings": np.asarray(flat, dtype=np.float32).reshape(len(table), dim),
        "labels": labels,
        "meta": meta,
    }


def _join_shards(parts: list[dict[str, Any]], paths: list[str]) -> dict[str, Any]:
    """Concatenate shard outputs in shard order, after checking they make up one whole output."""
    shards = [part["meta"].get("shard") for part in parts]
    if any(shard is None for shard in shards):
        unsharded = [p for p, s in zip(paths, shards) if s is None]
        raise ValueError(f"{unsharded[0]} is not a shard (written without shard=i/n); read it on its own")
    counts = {shard[1] for shard in shards}
    origin = {(p["meta"]["source"], p["meta"]["checkpoint"], p["meta"]["total_rows"]) for p in parts}
    if len(counts) > 1 or len(origin) > 1:
        raise ValueError(f"{paths} are shards of different runs (input, encoder or shard count differ)")
    count = counts.pop()
    indices = sorted(shard[0] for shard in shards)
    if indices != list(range(count)):
        missing = sorted(set(range(count)) - set(indices))
        raise ValueError(
            f"shards {indices} of {count} given: missing {missing}, repeated or out of range "
            f"(files: {', '.join(paths)})"
        )
    parts = sorted(parts, key=lambda part: part["meta"]["shard"][0])
    first = parts[0]
    meta = {**first["meta"], "shard": None, "rows": [0, first["meta"]["total_rows"]]}
    return {
        "ids": [i for part in parts for i in part["ids"]],
        "formulas": [f for part in parts for f in part["formulas"]],
        "embeddings": np.concatenate([part["embeddings"] for part in parts]),
        "labels": {name: np.concatenate([p["labels"][name] for p in parts]) for name in first["labels"]},
        "meta": meta,
    }
