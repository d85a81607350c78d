"""``logger=tensorboard|wandb``: each writes its files into the run directory offline, and a missing package
names the extra that installs it."""

from __future__ import annotations

import sys

import pytest

import contrast
from contrast.tasks.loggers import tensorboard_logger, wandb_logger

TINY = ["experiment=smoke", "trainer.max_epochs=1", "data.max_structures=16"]


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """wandb with no network, no account and nothing written outside ``tmp_path``."""
    for name, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DISABLE_GIT": "true",
        "WANDB_DISABLE_CODE": "true",
        "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"),
        "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"),
        "WANDB_DATA_DIR": str(tmp_path / "wandb-data"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)


@pytest.mark.slow
def test_tensorboard_writes_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    run_dir = tmp_path / "run"
    contrast.run_training([*TINY, "logger=tensorboard"], run_dir=run_dir)
    events = list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


@pytest.mark.slow
def test_wandb_writes_an_offline_run(tmp_path, offline_wandb):
    wandb = pytest.importorskip("wandb")
    run_dir = tmp_path / "run"
    try:
        contrast.run_training([*TINY, "logger=wandb"], run_dir=run_dir)
    finally:
        wandb.finish()  # Lightning leaves the run open until the process exits
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("run-*.wandb")), f"no run file in {runs[0]}"


def test_missing_wandb_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` now raises ImportError
    message = r"logger=wandb needs the wandb package: pip install -e '\.\[wandb\]'"
    with pytest.raises(ImportError, match=message):
        wandb_logger(save_dir=tmp_path)


def test_missing_tensorboard_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[tensorboard\]'"):
        tensorboard_logger(save_dir=tmp_path)


def test_the_configs_build_the_factories(tmp_path, offline_wandb):
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    conf = str(Path(__file__).resolve().parents[2] / "conf")
    for name, target in (("tensorboard", tensorboard_logger), ("wandb", wandb_logger)):
        with initialize_config_dir(config_dir=conf, version_base="1.3"):
            cfg = compose("train", overrides=[f"logger={name}", f"paths.output_dir={tmp_path}"])
        assert cfg.logger._target_ == f"contrast.tasks.loggers.{target.__name__}"
        assert cfg.logger.save_dir == str(tmp_path)
    assert cfg.logger.offline is True and cfg.logger.log_model is False
