"""Helpers to run ``python -m contrast.train`` in a subprocess from the tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY = ["experiment=smoke", "logger=none"]


def train_command(run_dir: Path, *overrides: str, multirun: bool = False) -> list[str]:
    command = [sys.executable, "-m", "contrast.train"]
    if multirun:
        command.append("-m")
        command.append(f"hydra.sweep.dir={run_dir}")
    else:
        command.append(f"hydra.run.dir={run_dir}")
    return command + TINY + list(overrides)


def environment(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["CONTRAST_CACHE"] = str(cache)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_train(run_dir: Path, cache: Path, *overrides: str, multirun: bool = False, timeout: float = 600):
    """Run the CLI to completion; fail the test with its output when it fails."""
    result = subprocess.run(
        train_command(run_dir, *overrides, multirun=multirun),
        cwd=REPO,
        env=environment(cache),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"exit {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
    )
    return result


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@contextlib.contextmanager
def started_train(run_dir: Path, cache: Path, *overrides: str) -> Iterator[subprocess.Popen]:
    """Start the CLI in its own process group (session), and kill that whole group on the way out, so that
    no test leaves a trainer or a DataLoader worker behind, whatever happens to it."""
    process = subprocess.Popen(
        train_command(run_dir, *overrides),
        cwd=REPO,
        env=environment(cache),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def live_processes(group: int, marker: str) -> list[int]:
    """Live (not zombie) processes of a process group, or whose command line contains ``marker`` (a run
    directory: a process that left the group still names its run)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # it ended meanwhile
            continue
        state, _, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if state not in ("Z", "X") and (int(pgrp) == group or marker in command):
            found.append(int(entry.name))
    return found


def children(pid: int) -> list[int]:
    """Live child processes of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
        except OSError:
            continue
        if int(ppid) == pid and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found
