"""Helpers to run ``python -m contrast.train`` in a subprocess from the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
