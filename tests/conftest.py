"""Shared fixtures: every test's dataset cache kept from the user's, an untrained checkpoint writer and a
quiet CPU trainer."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    import os

    cache = tmp_path_factory.mktemp("contrast-cache")
    previous = os.environ.get("CONTRAST_CACHE")
    os.environ["CONTRAST_CACHE"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("CONTRAST_CACHE", None)
    else:
        os.environ["CONTRAST_CACHE"] = previous


def write_untrained_checkpoint(path, encoder: dict, seed: int = 0):
    """Write a ``ContrastiveTask`` with ``encoder`` (seeded, untrained) to ``path`` as Lightning would, and
    return the module."""
    import torch

    from contrast.tasks.contrastive import ContrastiveTask

    torch.manual_seed(seed)
    module = ContrastiveTask(
        encoder=encoder,
        projector={"_target_": "contrast.nn.heads.ProjectionHead", "hidden_dim": 8, "out_dim": 4},
        loss={"_target_": "contrast.losses.InfoNCELoss", "temperature": 0.1},
        optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-3},
    )
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return module


def make_quiet_trainer(max_epochs: int, callbacks=(), **options):
    """A CPU trainer for ``max_epochs`` without checkpoints or sanity validation; gradients stay on in
    validation (forces are ``-dE/dpos``). ``options`` override any of these."""
    import pytorch_lightning as pl

    options = {"enable_checkpointing": False, "inference_mode": False, "num_sanity_val_steps": 0, **options}
    return pl.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
        **options,
    )


@pytest.fixture(scope="session")
def untrained_checkpoint():
    """``untrained_checkpoint(path, encoder, seed=0) -> module``: a seeded, untrained contrastive checkpoint
    for tests that need a checkpoint file but no training."""
    return write_untrained_checkpoint


@pytest.fixture(scope="session")
def quiet_trainer():
    """``quiet_trainer(max_epochs, callbacks=(), **options) -> Trainer``: a quiet CPU trainer for tests that
    fit tasks directly (no logger, progress bar or summary)."""
    return make_quiet_trainer


@pytest.fixture(scope="session")
def benchmark_script():
    """``benchmark_script(name)``: ``benchmarks/<name>.py`` loaded as a module (once per session)."""
    import importlib.util
    from pathlib import Path

    loaded = {}

    def load(name: str):
        if name not in loaded:
            path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
            spec = importlib.util.spec_from_file_location(f"benchmark_{name}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            loaded[name] = module
        return loaded[name]

    return load


@pytest.fixture(scope="session")
def ship_encoder_script(benchmark_script):
    """``benchmarks/ship_encoder.py`` as a module (its ``ship`` writes a shipped encoder and its card)."""
    return benchmark_script("ship_encoder")
