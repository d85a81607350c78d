"""On-disk cache of built datasets: where it lives, what invalidates it, and atomic writes.

A cache entry is a folder ``<cache root>/<source name>-<key>/`` holding the compact arrays of
:mod:`contrast.data.store.arrays` (ids and formulas among them), ``meta.json`` (store kind, skipped entries,
structures with isolated atoms) and, when skipping was asked for or atoms are isolated, ``data_report.json``.
The key hashes everything that shapes the result: each file the source reads (its path and content, or size
and modification time for a large file; every CIF of a CGCNN folder, every member of a folder or glob), the
reader options, the targets, the store kind, the cutoff (for the graph store, or when every atom must have a
neighbour), the error policy, whether every atom must have a neighbour, the structure limit and
:data:`FORMAT_VERSION`. Changing any of them gives a new key, so a stale cache is never reused. Entries are
written into a temporary folder and renamed into place, so an interrupted build never leaves a half cache;
the shards of an unfinished build wait beside it in ``.<entry>.shards/`` (see
:mod:`contrast.data.store.shards`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["FORMAT_VERSION", "build_lock", "default_cache_root", "cache_key", "write_atomically"]

FORMAT_VERSION = 4  # 4: broken frames re-synchronised, files keyed by content; 3: graph and structure stores
HASHED_BYTES = 16 << 20  # files up to this size are keyed by their content, larger ones by size and mtime


def default_cache_root() -> Path:
    """``$CONTRAST_CACHE`` when set, else ``~/.cache/contrast``."""
    return Path(os.environ.get("CONTRAST_CACHE", Path.home() / ".cache" / "contrast")).expanduser()


def cache_key(files: list[str], settings: dict[str, Any]) -> str:
    """A 16-hex-digit key over every file a source reads and the JSON-serialisable ``settings``.

    A file of up to :data:`HASHED_BYTES` is keyed by its path and content (an overwritten CIF changes the
    key even within one mtime tick), a larger one by its path, size and modification time.
    """
    stamps = []
    for path in files:
        stat = os.stat(path)
        if stat.st_size <= HASHED_BYTES:
            with open(path, "rb") as handle:
                content = hashlib.blake2b(handle.read(), digest_size=16).hexdigest()
            stamps.append([os.path.abspath(path), content])
        else:
            stamps.append([os.path.abspath(path), stat.st_size, stat.st_mtime_ns])
    payload = json.dumps({"version": FORMAT_VERSION, "files": stamps, "settings": settings}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def entry_name(source: str, key: str) -> str:
    """Folder name of a cache entry: a readable stem of the source plus the key."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(source)).name)[:48] or "data"
    return f"{stem}-{key}"


@contextlib.contextmanager
def build_lock(final: Path) -> Iterator[None]:
    """Hold an exclusive lock on building the cache entry ``final`` (a ``.<name>.lock`` file beside it).

    Ranks of one DDP job (and any runs sharing a cache) set up their data at the same time: without the lock
    they would build the same entry's shards in the same work folder at once, one reading a plan file the
    other is still writing. The first to take the lock builds; the others wait, then find the entry done.
    The lock file is removed once the entry exists. Where ``fcntl`` is missing (Windows) the lock is a no-op.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        yield
        return
    lock = final.parent / f".{final.name}.lock"
    with open(lock, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if final.exists():  # built: later loaders find it without the lock, so the file can go
                lock.unlink(missing_ok=True)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def write_atomically(final: Path, write: Callable[[str], None]) -> Path:
    """Run ``write(tmp_folder)``, then rename the folder to ``final`` (another writer winning is fine)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent)
    try:
        write(tmp)
        os.rename(tmp, final)
    except OSError:
        if not final.exists():
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # an identical entry was written concurrently
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
