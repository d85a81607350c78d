"""Every path that builds objects from a checkpoint refuses a disallowed ``_target_`` at any depth, names it,
and never calls it (the canary callable leaves a file when it runs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from contrast.pretrained.checkpoint import CheckpointError, build_from_config, check_targets
from contrast.tasks.base import build

ENCODER = {"_target_": "contrast.nn.painn.PaiNN", "hidden_dim": 8, "num_layers": 1, "num_rbf": 4}
CANARY = "tests.canary.touch"


def _poisoned(encoder: dict, marker: Path, where: str) -> dict:
    """The encoder config with the canary at the top, nested in a dict, or nested in a list."""
    call = {"_target_": CANARY, "path": str(marker)}
    if where == "top":
        return call
    if where == "dict":
        return {**encoder, "extra": {"inner": call}}
    return {**encoder, "extra": [1, call]}


@pytest.fixture
def evil_checkpoint(tmp_path, untrained_checkpoint):
    """``make(where, energy=False) -> (path, canary file)``: a real checkpoint whose encoder config is
    poisoned (contrastive, or energy with a head)."""

    def make(where: str, energy: bool = False) -> tuple[Path, Path]:
        marker = tmp_path / f"canary-{where}.txt"
        path = tmp_path / f"evil-{where}{'-energy' if energy else ''}.ckpt"
        if energy:
            from contrast.tasks.energy import EnergyTask

            module = EnergyTask(encoder=ENCODER, optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-3})
            checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
        else:
            module = untrained_checkpoint(tmp_path / "clean.ckpt", ENCODER)
            checkpoint = torch.load(tmp_path / "clean.ckpt", weights_only=True)
        checkpoint["hyper_parameters"]["encoder"] = _poisoned(ENCODER, marker, where)
        checkpoint["pytorch-lightning_version"] = pl.__version__
        torch.save(checkpoint, path)
        return path, marker

    return make


def _refused(call, marker: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        call()
    assert not marker.exists(), "the disallowed target was called"
    message = str(info.value)
    assert CANARY in message
    return message


WHERE = ["top", "dict", "list"]


def test_the_canary_is_observable(tmp_path):
    # Hydra's instantiate would call it: the tests below would see it if anything did.
    from hydra.utils import instantiate

    marker = tmp_path / "m.txt"
    instantiate({"_target_": CANARY, "path": str(marker)})
    assert marker.read_text() == "called"


@pytest.mark.parametrize("where", WHERE)
def test_builder_checks_the_whole_config_before_building(tmp_path, where):
    marker = tmp_path / "m.txt"
    config = _poisoned(ENCODER, marker, where)
    message = _refused(lambda: build_from_config(config), marker)
    assert {"top": "top level", "dict": "extra.inner", "list": "extra[1]"}[where] in message
    _refused(lambda: check_targets(config), marker)


@pytest.mark.parametrize("where", WHERE)
def test_task_parts_are_built_by_the_allow_listed_builder(tmp_path, where):
    marker = tmp_path / "m.txt"
    _refused(lambda: build(_poisoned(ENCODER, marker, where)), marker)


@pytest.mark.parametrize("where", WHERE)
def test_load_encoder_refuses(evil_checkpoint, tmp_path, where):
    from contrast.pretrained.loading import load_encoder

    path, marker = evil_checkpoint(where)
    assert str(path) in _refused(lambda: load_encoder(path), marker)


@pytest.mark.parametrize("where", WHERE)
def test_load_calculator_refuses(evil_checkpoint, tmp_path, where):
    from contrast.pretrained.loading import load_calculator

    path, marker = evil_checkpoint(where, energy=True)
    _refused(lambda: load_calculator(path), marker)


@pytest.mark.parametrize("where", WHERE)
def test_lightning_load_from_checkpoint_refuses(evil_checkpoint, tmp_path, where):
    from contrast.tasks.contrastive import ContrastiveTask

    path, marker = evil_checkpoint(where)
    _refused(lambda: ContrastiveTask.load_from_checkpoint(path, weights_only=True), marker)


def test_optimizer_target_is_checked(tmp_path):
    from contrast.tasks.base import optimizer_class

    marker = tmp_path / "m.txt"
    _refused(lambda: optimizer_class({"_target_": CANARY, "path": str(marker)}), marker)
    with pytest.raises(CheckpointError, match="not a torch optimiser"):
        optimizer_class({"_target_": "torch.optim.lr_scheduler.LambdaLR"})
    assert optimizer_class({"_target_": "torch.optim.AdamW"}) is torch.optim.AdamW


@pytest.mark.parametrize("where", WHERE)
def test_evaluate_and_export_refuse(evil_checkpoint, tmp_path, where):
    from contrast.embeddings.export import embed_file
    from contrast.evaluation.runner import evaluate

    path, marker = evil_checkpoint(where)
    import ase.io
    from ase.build import bulk

    ase.io.write(tmp_path / "si.extxyz", bulk("Si", cubic=True), format="extxyz")
    task = {"file": "si.extxyz", "target": "energy", "split": {"kind": "random"}}
    suite = {"name": "none", "data_dir": str(tmp_path), "skip_missing": True, "tasks": {"t": task}}
    _refused(lambda: evaluate(path, suite, tmp_path / "eval"), marker)
    _refused(lambda: embed_file(path, "default", out=None, device="cpu"), marker)


@pytest.mark.parametrize("task", ["energy", "probe", "finetune"])
@pytest.mark.parametrize("where", WHERE)
def test_task_checkpoint_refuses(evil_checkpoint, tmp_path, task, where):
    from contrast.cli.train import run_training

    path, marker = evil_checkpoint(where)
    overrides = ["experiment=smoke", f"task={task}", f"task.checkpoint={path}", "data.targets=[energy]"]
    _refused(lambda: run_training(overrides, run_dir=tmp_path / task), marker)


@pytest.mark.parametrize("where", WHERE)
def test_resume_refuses(evil_checkpoint, tmp_path, where):
    from contrast.cli.train import run_training

    path, marker = evil_checkpoint(where)
    overrides = ["experiment=smoke", f"ckpt_path={path}"]
    message = _refused(lambda: run_training(overrides, tmp_path / "r"), marker)
    assert "hyper_parameters.encoder" in message
