"""A built wheel carries its configs and shipped models: installed outside the checkout, the documented
commands run from another folder."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(command: list[str], cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.mark.slow
def test_wheel_installs_and_runs_from_another_folder(tmp_path):
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    # No build isolation: the build needs only the setuptools of this environment, never the network.
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(REPO),
        ],
        tmp_path,
        env,
    )
    (wheel,) = wheels.glob("contrast-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "contrast/conf/train.yaml" in names and "contrast/conf/experiment/smoke.yaml" in names
    assert any(name.startswith("contrast/pretrained/models/") and name.endswith(".pt") for name in names)
    _run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
        tmp_path,
        env,
    )

    # The installed copy, not the checkout, is what runs (dependencies come from this environment).
    run_env = {
        **env,
        "PYTHONPATH": str(target),
        "CONTRAST_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
    }
    where = _run([sys.executable, "-c", "import contrast; print(contrast.__file__)"], elsewhere, run_env)
    assert where.stdout.strip().startswith(str(target)), where.stdout
    run_dir = tmp_path / "run"
    _run(
        [
            sys.executable,
            "-m",
            "contrast.train",
            "experiment=smoke",
            "logger=none",
            f"hydra.run.dir={run_dir}",
        ],
        elsewhere,
        run_env,
    )
    assert (run_dir / "checkpoints" / "last.ckpt").is_file() and (run_dir / "metrics.json").is_file()
    help_text = _run([sys.executable, "-m", "contrast.evaluate", "--help"], elsewhere, run_env).stdout
    assert "checkpoint" in help_text
    _run([sys.executable, "-m", "contrast.export", "--help"], elsewhere, run_env)
