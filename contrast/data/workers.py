"""DataLoader workers that end with the process that started them.

A worker's batches reach the main process through a pipe, which a queue feeder thread in the worker fills.
When the main process is killed (OOM killer, scheduler), PyTorch's watchdog in the worker notices within
seconds and leaves the worker loop; but then the worker's exit joins the feeder thread, which waits forever
to write batches that nobody will read. The pipe is full, and its read end stays open in the worker itself
(a forked worker inherits both ends), so the write never fails. A batch handed back by value
(``WorkerBatchCollater``) is larger than a pipe holds (80 to 340 kB in the smoke run, against 64 kB), so one
batch that the main process has not read yet is enough, and the orphaned worker holds its memory for good.

:class:`WorkerInit` ties each worker to its parent: on Linux the kernel kills the worker when the parent
dies (``PR_SET_PDEATHSIG``); everywhere, a worker that finds itself orphaned when it exits leaves without
flushing.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from multiprocessing.util import Finalize

from lightning_fabric.utilities.seed import pl_worker_init_function

__all__ = ["WorkerInit", "end_with_parent"]

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# multiprocessing runs exit finalizers of priority >= 0 first, highest first, and only then the queues' joins
# of their feeder threads (priority -5), which are what never return in an orphan.
_BEFORE_QUEUE_JOINS = 100


def end_with_parent() -> None:
    """Make the current process, a child started by :mod:`multiprocessing`, end when its parent ends.

    Does nothing in a process that :mod:`multiprocessing` did not start (it has no parent to follow). On
    Linux the death signal comes when the parent's *thread* that started this process ends; Lightning creates
    its DataLoader iterators, and so starts the workers, in the trainer's main thread.
    """
    started_by = multiprocessing.parent_process()
    if started_by is None:
        return
    # The operating system's parent is the process that started this one, except under the forkserver start
    # method: there it is the server, which ends when the process that started this one ends.
    forkserver = multiprocessing.get_start_method(allow_none=True) == "forkserver"
    parent = os.getppid() if forkserver else started_by.pid
    if sys.platform.startswith("linux"):
        _kill_on_parent_death()
    # Without PR_SET_PDEATHSIG (other systems) PyTorch's watchdog still ends the worker loop once the parent
    # has gone; this makes the exit that follows not wait on the pipe to the dead parent.
    Finalize(None, _exit_if_orphaned, args=(parent,), exitpriority=_BEFORE_QUEUE_JOINS)
    # The parent may have died before the death signal was armed; then no signal will come, and PyTorch's
    # watchdog, which starts after this, would take the adoptive parent for the main process.
    _exit_if_orphaned(parent)


def _kill_on_parent_death() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # best effort: the exit hook still applies
    except (OSError, AttributeError):
        pass


def _exit_if_orphaned(parent: int) -> None:
    if os.getppid() != parent:
        os._exit(1)  # nothing to flush: whatever the worker still holds was for the dead parent


class WorkerInit:
    """``worker_init_fn`` of the crystal DataLoaders: ties the worker to its parent (:func:`end_with_parent`),
    then seeds it as Lightning does.

    Lightning adds its own seeding ``worker_init_fn`` only to a DataLoader that has none, so this one calls
    Lightning's after ``pl.seed_everything(..., workers=True)`` (which sets ``PL_SEED_WORKERS=1``), with the
    same arguments: the worker streams stay as they were.

    Args:
        rank: global rank of the process that iterates the loader; ``None`` takes Lightning's current rank.
    """

    def __init__(self, rank: int | None = None):
        self.rank = rank

    def __call__(self, worker_id: int) -> None:
        end_with_parent()
        if int(os.environ.get("PL_SEED_WORKERS", 0)):
            pl_worker_init_function(worker_id, rank=self.rank)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank})"
