"""Streaming, parallel, resumable builds of cached stores.

Entries flow from the readers (:func:`~contrast.data.io.stream.iter_jobs`) into shards of at most
``shard_size`` entries. Each shard is checked and built by one of ``workers`` forked processes and written
to ``<cache entry>.shards/shard-<k>/`` (its arrays plus ``shard.json``) through a temporary folder, so a
shard on disk is always complete. At most ``workers + 1`` shards are in flight, so the memory of a build
does not grow with the number of structures. An interrupted build keeps its finished shards and the next
one skips them: shard boundaries depend only on the files and ``shard_size``. When all shards are there,
they are copied one by one into the final store (see :mod:`contrast.data.store.arrays`), one shard's array in
memory at a time, the ids are made unique over the whole source
(:func:`~contrast.data.store.build.unique_ids`,
the same rule as for one shard, checked on bytes arrays), the data report is written and the shards are
removed. The memory of a build thus stays flat in the number of structures.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from contrast.data.io.readers import CUT_REASON, SourceSpec
from contrast.data.io.stream import ShardJob, iter_jobs, job_entries
from contrast.data.store.arrays import decode, save_store, string_array
from contrast.data.store.build import BuildSettings, all_bad_error, build_chunk, unique_ids
from contrast.data.store.cache import write_atomically
from contrast.graph.convert import StructureError

__all__ = ["SHARD_SIZE", "REPORT_NAME", "build_store", "data_report", "default_workers"]

log = logging.getLogger(__name__)
SHARD_SIZE = 50_000
REPORT_NAME = "data_report.json"
_SHARD_ONLY = ("raw_ids", "hashes")  # per-shard arrays that the final store replaces by ``ids``


def default_workers() -> int:
    """Build processes when none are asked for: the CPUs this process may use, at most 8."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, cpus or 1))


def build_store(
    spec: SourceSpec,
    folder: str | os.PathLike,
    settings: BuildSettings,
    name: str,
    max_structures: int | None = None,
    workers: int | None = None,
    shard_size: int = SHARD_SIZE,
    on_shard: Callable[[int], None] | None = None,
) -> Path:
    """Build the store of a file source into ``folder`` (a cache entry), resuming from finished shards.

    Args:
        spec: the resolved source.
        folder: the cache entry to create (written atomically; its shards live beside it meanwhile).
        settings: what to build (store kind, cutoff, targets, error policy).
        name: the source's name in messages and the report.
        max_structures: read at most this many entries.
        workers: processes building shards (default :func:`default_workers`; a source of one shard is built
            in this process).
        shard_size: entries per shard.
        on_shard: called with each shard's number once it is on disk, in order (progress hooks, tests).

    Raises:
        StructureError: the first bad entry (``on_error="raise"``), or every entry bad.
    """
    folder = Path(folder)
    work = folder.parent / f".{folder.name}.shards"
    _prepare(work, shard_size)
    workers = default_workers() if workers is None else max(1, int(workers))
    try:
        numbers = _run(iter_jobs(spec, shard_size, max_structures), work, settings, workers, on_shard)
    except StructureError:
        shutil.rmtree(work, ignore_errors=True)
        raise
    shards = [work / _shard_name(k) for k in numbers]
    info = [json.loads((shard / "shard.json").read_text()) for shard in shards]
    n_read, kept = sum(i["n_read"] for i in info), sum(i["n_kept"] for i in info)
    skipped = [record for i in info for record in i["skipped"]]
    if kept == 0:
        shutil.rmtree(work, ignore_errors=True)
        raise all_bad_error(skipped, n_read, name)
    if skipped:
        log.warning("skipped %d of %d entries of %s (bad input)", len(skipped), n_read, name)
    meta = {
        "store": settings.store,
        "target_names": list(settings.targets),
        "cutoff": settings.cutoff,
        "source": name,
        "skipped": skipped,
        "n_read": n_read,
        "n_kept": kept,
        "isolated_counted": settings.store == "graph",
    }
    write_atomically(folder, lambda tmp: _finish(shards, info, meta, tmp, settings.on_error))
    shutil.rmtree(work, ignore_errors=True)
    return folder


def data_report(meta: dict) -> dict:
    """The data report of a store's meta: structures read, kept and skipped, and those with isolated atoms."""
    isolated = meta.get("isolated", [])
    return {
        "source": meta["source"],
        "read": meta["n_read"],
        "kept": meta["n_kept"],
        "skipped": len(meta["skipped"]),
        "entries": meta["skipped"],
        # compressed files that end early: their complete frames are kept, the cut is one skipped entry
        "cut_files": sorted({record["file"] for record in meta["skipped"] if record["reason"] == CUT_REASON}),
        "with_isolated_atoms": len(isolated) if meta.get("isolated_counted", True) else None,
        "isolated": isolated,
    }


def _shard_name(number: int) -> str:
    return f"shard-{number:06d}"


def _prepare(work: Path, shard_size: int) -> None:
    """Keep the finished shards of an earlier build with the same shard size; drop anything else."""
    plan = work / "plan.json"
    if work.exists() and (not plan.exists() or json.loads(plan.read_text()).get("shard_size") != shard_size):
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    plan.write_text(json.dumps({"shard_size": shard_size}))
    for stale in work.glob(".tmp-*"):  # left by a killed writer
        shutil.rmtree(stale, ignore_errors=True)


def _run(tasks, work: Path, settings: BuildSettings, workers: int, on_shard) -> list[int]:
    """Build every unfinished shard, in order of submission; return all shard numbers."""
    from tqdm.auto import tqdm

    numbers: list[int] = []
    in_flight: deque = deque()
    pool = None
    first: ShardJob | None = None
    progress = tqdm(desc="building shards", unit="shard", disable=None, leave=False)

    def collect(result) -> None:
        if result[0] == "error":
            raise StructureError(*result[1:])
        log.info("shard %d: %d of %d entries kept", result[1], result[2], result[3])
        progress.update(1)
        if on_shard is not None:
            on_shard(result[1])

    try:
        for task in tasks:
            numbers.append(task.number)
            if (work / _shard_name(task.number) / "shard.json").exists():
                progress.update(1)
                continue
            if workers == 1:
                collect(_build_job(task, work, settings))
                continue
            if first is None and pool is None:
                first = task  # a source of one shard is built here, without starting processes
                continue
            if pool is None:
                pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"))
                in_flight.append(pool.submit(_build_job, first, work, settings))
                first = None
            in_flight.append(pool.submit(_build_job, task, work, settings))
            while len(in_flight) > workers:
                collect(_result(in_flight.popleft(), work))
        if first is not None:
            collect(_build_job(first, work, settings))
        while in_flight:
            collect(_result(in_flight.popleft(), work))
    finally:
        progress.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return numbers


def _result(future: Future, work: Path):
    """A shard's result; a worker process that died (killed, out of memory) is an error, never a hang."""
    try:
        return future.result()
    except BrokenProcessPool as error:
        raise RuntimeError(
            f"a process building shards in {work} died before finishing ({error}); the shards already "
            "written are kept, so running again resumes the build"
        ) from error


def _build_job(task: ShardJob, work: Path, settings: BuildSettings):
    """Build one shard and write it: ``("done", number, kept, read)``, or ``("error", reason, file, entry)``
    for the first bad entry when bad entries raise."""
    result = build_chunk(job_entries(task), settings)
    if isinstance(result, StructureError):
        return ("error", result.reason, result.source, result.entry)
    arrays, meta = result
    kept = len(arrays["atom_ptr"]) - 1
    meta["n_kept"] = kept

    def write(tmp: str) -> None:
        save_store(arrays, tmp)
        Path(tmp, "shard.json").write_text(json.dumps(meta))

    write_atomically(work / _shard_name(task.number), write)
    return ("done", task.number, kept, meta["n_read"])


def _finish(shards: list[Path], info: list[dict], meta: dict, folder: str, on_error: str) -> None:
    """Concatenate the shards into the final store in ``folder``, then its meta and report.

    Each array is copied shard by shard, reading one shard's array at a time into memory and writing it on,
    so the memory of this step does not grow with the store (no shard stays mapped)."""
    keys = sorted(name[: -len(".npy")] for name in os.listdir(shards[0]) if name.endswith(".npy"))
    for key in keys:
        if key in _SHARD_ONLY:
            continue
        paths = [shard / f"{key}.npy" for shard in shards]
        target = os.path.join(folder, f"{key}.npy")
        (_write_offsets if key.endswith("_ptr") else _write_concatenated)(paths, target)
    ids = _final_ids(shards, [i for record in info for i in record["skipped_ids"]])
    np.save(os.path.join(folder, "ids.npy"), ids)
    isolated, offset = [], 0
    for record in info:
        for item in record["isolated"]:
            index = item["index"] + offset
            isolated.append({**item, "index": index, "id": ids[index].decode()})
        offset += record["n_kept"]
    meta = {**meta, "isolated": isolated}
    if on_error == "skip" or isolated:
        Path(folder, REPORT_NAME).write_text(json.dumps(data_report(meta), indent=1))
    Path(folder, "meta.json").write_text(json.dumps(meta))  # written last: marks a complete entry


def _final_ids(shards: list[Path], skipped_ids: list[str]) -> np.ndarray:
    """The store's unique ids [S] bytes, by :func:`~contrast.data.store.build.unique_ids`.

    When no read id is shared (the usual case), the ids are the read ids as they are: that is checked on the
    bytes arrays, so a build of millions of structures holds no Python string per structure here.
    """
    raw = np.concatenate([np.load(shard / "raw_ids.npy") for shard in shards])
    every = np.concatenate([raw, string_array(skipped_ids)]) if skipped_ids else raw
    if len(every) == 0 or np.unique(every, return_counts=True)[1].max() <= 1:
        return raw
    hashes = [h for shard in shards for h in decode(np.load(shard / "hashes.npy"))]
    return string_array(unique_ids(decode(raw), hashes, skipped_ids))


def _layouts(paths: list[Path]) -> list[tuple[tuple[int, ...], np.dtype]]:
    """``(shape, dtype)`` of each ``.npy`` file, from its header."""
    layouts = []
    for path in paths:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            fmt = np.lib.format
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read(handle)
        layouts.append((shape, dtype))
    return layouts


def _write_npy(path: str, dtype: np.dtype, shape: tuple[int, ...], parts) -> None:
    """Write a ``.npy`` file of ``shape`` and ``dtype`` from ``parts``, arrays produced one at a time."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        for part in parts:
            handle.write(np.ascontiguousarray(part, dtype=dtype).data)


def _write_concatenated(paths: list[Path], path: str) -> None:
    """The shards' arrays one after the other in one ``.npy`` file, one shard in memory at a time."""
    layouts = _layouts(paths)
    filled = [shape for shape, _ in layouts if shape[0]] or [layouts[0][0]]
    dtype = np.result_type(*[dtype for _, dtype in layouts])
    shape = (sum(shape[0] for shape, _ in layouts), *filled[0][1:])
    _write_npy(path, dtype, shape, (np.load(p) for p, (s, _) in zip(paths, layouts) if s[0]))


def _write_offsets(paths: list[Path], path: str) -> None:
    """Offsets of the concatenated store: each shard's own, shifted by the sizes before it."""
    total = sum(shape[0] - 1 for shape, _ in _layouts(paths))

    def parts():
        yield np.zeros(1, dtype=np.int64)
        base = 0
        for p in paths:
            offsets = np.load(p).astype(np.int64)
            yield offsets[1:] + base
            base += int(offsets[-1])

    _write_npy(path, np.int64, (total + 1,), parts())
