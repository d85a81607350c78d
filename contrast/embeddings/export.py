"""Embeddings of a structure file, written to a file: ``python -m contrast.export`` (console script
``contrast-embed``; also ``python -m contrast embed``).

    python -m contrast.export checkpoint=runs/x/checkpoints/last.ckpt data.path=mp.extxyz.gz out=emb.npz
    python -m contrast.export ... data.targets=[band_gap] data.on_error=skip shard=3/8 out=emb.3.npz

The structures are read once into the cached, memory-mapped dataset of :func:`contrast.load_dataset` and
embedded in batches by :func:`contrast.embed` (a progress bar, a GPU when present). ``shard=i/n`` embeds the
i-th of n contiguous blocks of the structures, so the outputs of ``i = 0 .. n-1`` concatenate, in input order,
to the unsharded output (:func:`~contrast.embeddings.files.read_embeddings` joins them).

The module is not called ``contrast.embed``: importing a submodule binds its name on the package, so
``import contrast.embed`` (which a console script does) would replace the function ``contrast.embed`` with a
module for the rest of the process.
"""

from __future__ import annotations

import datetime
import os
import re
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from contrast.embeddings.files import check_out_path, read_embeddings, write_embeddings

__all__ = ["embed_file", "parse_shard", "read_embeddings", "shard_rows"]


def parse_shard(shard: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"i/n"`` (or ``(i, n)``) -> ``(i, n)`` with ``0 <= i < n``; None -> None.

    Raises:
        ValueError: anything else, with the expected form.
    """
    if shard is None:
        return None
    if isinstance(shard, str):
        found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", shard)
        if not found:
            raise ValueError(f"shard={shard!r}: expected 'i/n', e.g. shard=0/4 for the first of 4 shards")
        shard = (int(found.group(1)), int(found.group(2)))
    index, count = (int(v) for v in shard)
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard={index}/{count}: need 0 <= i < n (shards are numbered from 0)")
    return index, count


def shard_rows(total: int, shard: tuple[int, int] | None, batch_size: int = 1) -> tuple[int, int]:
    """The rows ``[start, stop)`` of shard ``(i, n)`` of ``total`` rows.

    Shards are contiguous runs of whole batches (their sizes differ by at most one batch), so a sharded run
    embeds exactly the batches of the unsharded one and its rows equal the unsharded rows bit for bit.
    """
    if shard is None:
        return 0, total
    index, count = shard
    batches = -(-total // batch_size)
    return (
        min(total, index * batches // count * batch_size),
        min(total, (index + 1) * batches // count * batch_size),
    )


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"``: the first GPU when one is present, else the CPU; anything else as torch reads it."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class _Rows(Dataset):
    """Rows ``[start, stop)`` of a dataset, still memory-mapped, with its cutoff (which embed checks)."""

    def __init__(self, dataset, start: int, stop: int):
        self.dataset, self.start, self.stop = dataset, start, stop
        self.cutoff = dataset.cutoff

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: int):
        return self.dataset[self.start + index]


def embed_file(
    checkpoint: Any,
    path: str | os.PathLike,
    out: str | os.PathLike | None = None,
    targets: list[str] | None = None,
    batch_size: int = 64,
    device: str | torch.device = "auto",
    shard: str | tuple[int, int] | None = None,
    on_error: str = "raise",
    max_structures: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
    **reader_options: Any,
) -> dict[str, Any]:
    """Embed every structure of a file, one row each, and write the rows to ``out``.

    Args:
        checkpoint: a checkpoint path or a shipped encoder's name (:func:`contrast.load_encoder`), or an
            encoder (moved to ``device``).
        path: any file :func:`contrast.load_dataset` reads.
        out: ``.npz`` or ``.parquet`` (needs pyarrow); None returns the rows without writing.
        targets: labels of the file to copy into each row (graph properties such as ``band_gap``; stress
            [3, 3]; per-atom forces are refused).
        batch_size: structures per forward pass.
        device: ``"auto"`` (a GPU when present), ``"cpu"``, ``"cuda:1"``...
        shard: ``"i/n"``: only the i-th of n contiguous blocks of the (kept) structures, made of whole
            batches (see :func:`shard_rows`).
        on_error: ``"raise"`` on a bad entry, or ``"skip"`` it; skipped entries are listed in ``meta``.
        max_structures: read at most this many structures.
        cache_dir: the dataset cache root (default ``$CONTRAST_CACHE`` or ``~/.cache/contrast``).
        progress: show a progress bar (default: more than 1,000 structures).
        **reader_options: passed to :func:`contrast.load_dataset` (e.g. ``format``).

    Returns:
        What :func:`read_embeddings` returns for the file: ``ids``, ``formulas``, ``embeddings`` float32
        [S, D], ``labels`` {name: [S, ...]}, ``meta``.

    Raises:
        ValueError: a bad ``out`` name, ``shard`` or target; StructureError: a bad entry (on_error="raise").
    """
    from contrast.data.dataset import load_dataset
    from contrast.pretrained.loading import embed, load_encoder

    if out is not None:
        check_out_path(out)  # before any work: a wrong suffix or missing pyarrow fails at once
    shard = parse_shard(shard)
    targets = list(targets or [])
    if "forces" in targets:
        raise ValueError("data.targets: forces are per atom, not one value per structure; leave them out")
    device = resolve_device(device)
    if isinstance(checkpoint, torch.nn.Module):
        encoder, name = checkpoint.to(device).eval(), type(checkpoint).__name__
    else:
        encoder, name = load_encoder(checkpoint, device=device), str(checkpoint)
    dataset = load_dataset(
        os.fspath(path),
        cutoff=encoder.cutoff,
        targets=targets,
        on_error=on_error,
        cache_dir=cache_dir,
        max_structures=max_structures,
        **reader_options,
    )
    start, stop = shard_rows(len(dataset), shard, batch_size)
    embeddings = embed(encoder, _Rows(dataset, start, stop), batch_size=batch_size, progress=progress)
    labels = {n: _label(dataset.targets(n)[start:stop]) for n in targets}
    result = {
        "ids": dataset.ids[start:stop],
        "formulas": dataset.formulas[start:stop],
        "embeddings": embeddings.float().numpy(),
        "labels": labels,
        "meta": _meta(dataset, encoder, name, path, shard, (start, stop), targets),
    }
    result["meta"]["labels"] = {n: list(v.shape[1:]) for n, v in labels.items()}
    if out is not None:
        write_embeddings(result, out)
    return result


def _label(values: np.ndarray) -> np.ndarray:
    """A graph property [S, 1] -> [S]; stress [S, 3, 3] as it is."""
    values = np.asarray(values, dtype=np.float64)
    return values.reshape(len(values)) if values.ndim == 2 and values.shape[1] == 1 else values


def _meta(dataset, encoder, name: str, path, shard, rows: tuple[int, int], targets: list[str]) -> dict:
    from contrast import __version__

    skipped = [{"id": _skipped_id(record["entry"]), **record} for record in dataset.report()["entries"]]
    return {
        "format": "contrast.embeddings/1",
        "contrast_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": name,
        "encoder": type(encoder).__name__,
        "embedding_dim": int(encoder.embedding_dim),
        "cutoff": float(dataset.cutoff),
        "source": os.path.abspath(os.fspath(path)),
        "targets": targets,
        "shard": list(shard) if shard else None,
        "rows": list(rows),
        "total_rows": len(dataset),
        "skipped": skipped,
    }


def _skipped_id(entry: str) -> str:
    """The id of a skipped entry from its label ``"<index> (<id>)"``; an entry without an id is named by
    its position in the source, as kept structures are."""
    found = re.fullmatch(r"(\d+) \((.*)\)", str(entry))
    return found.group(2) if found else str(entry)
