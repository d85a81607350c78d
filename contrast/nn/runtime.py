"""Process-level settings that make CPU steps faster.

Autograd allocates and frees many multi-megabyte tensors per step. glibc's ``malloc`` serves allocations above
its ``mmap`` threshold with fresh pages from the kernel, and returns freed memory at the top of its heap to
the kernel once it exceeds the trim threshold; both thresholds start small and adapt slowly. Every step then
pays page faults (the kernel zeroing each 4 kB page) for memory it has just given back (what it costs:
``BENCHMARKS.md``). :func:`tune_cpu_allocator` raises both thresholds, the usual remedy short of
preloading jemalloc or tcmalloc. Training (``contrast.train``) and :func:`contrast.load_calculator` call it;
it does nothing outside glibc, or where the user set glibc's ``MALLOC_*`` variables or preloaded another
allocator.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

__all__ = ["tune_cpu_allocator"]

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 2**30
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_MAX_", "MALLOC_TOP_PAD_")

_applied: bool | None = None


def tune_cpu_allocator(force: bool = False) -> bool:
    """Keep freed tensor memory in the process for reuse instead of returning it to the kernel every step.

    Sets glibc's ``mmap`` threshold to 32 MB (its maximum: larger tensors still get their own pages; the
    encoders split per-edge work so that theirs stay below it) and its trim threshold to 1 GB, so up to
    1 GB of freed memory may stay resident between steps. Applied once per process.

    Args:
        force: apply even when the environment sets glibc's ``MALLOC_*`` variables or preloads an allocator.

    Returns:
        Whether the settings are in effect.
    """
    global _applied
    if _applied is not None and not force:
        return _applied
    _applied = False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if not force and (
        any(name in os.environ for name in _USER_SETTINGS) or "alloc" in os.environ.get("LD_PRELOAD", "")
    ):
        log.info("leaving malloc as configured in the environment")
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        _applied = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        )
    except (OSError, AttributeError):  # pragma: no cover - a libc without mallopt
        _applied = False
    return _applied
