"""A last batch too small for the loss is dropped, so a run never depends on the dataset size modulo the
batch size; a batch of one never adds a term to a contrastive loss."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from contrast.cli.train import run_training
from contrast.data.datamodule import CrystalDataModule
from contrast.losses import barlow_twins, info_nce, vicreg


@pytest.mark.parametrize("loss", [info_nce, barlow_twins, vicreg])
def test_a_batch_of_one_is_refused_by_every_loss(loss):
    z = torch.randn(1, 4)
    with pytest.raises(ValueError, match="at least 2 crystals"):
        loss(z, z + 0.1)


def _train_size(tmp_path) -> int:
    module = CrystalDataModule(
        "default",
        cutoff=5.0,
        max_structures=48,
        fractions=(0.9, 0.1, 0.0),
        seed=0,
        cache_dir=str(tmp_path / "cache"),
    )
    module.setup()
    return len(module.train_set)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["vicreg", "infonce"])
def test_a_last_batch_of_one_is_dropped_and_training_runs(tmp_path, caplog, loss):
    n_train = _train_size(tmp_path)
    batch = n_train - 1  # n_train = 1 x batch + 1: the last batch of each epoch holds one crystal
    with caplog.at_level(logging.INFO):
        summary = run_training(
            [
                "experiment=smoke",
                "logger=none",
                f"loss={loss}",
                f"data.batch_size={batch}",
                "seed=0",
                "trainer.max_epochs=2",
                "data.fractions=[0.9,0.1,0.0]",
            ],
            run_dir=tmp_path / "run",
        )
    assert "the last batch of each epoch would hold 1 crystal(s)" in caplog.text
    assert math.isfinite(summary["last_epoch"]["train_loss"]) and summary["last_epoch"]["epoch"] == 1


def test_the_drop_rule(tmp_path):
    module = CrystalDataModule("default", batch_size=4, min_batch_size=2)
    assert module._drop_last(list(range(9)), None, "train") is True  # 4 + 4 + 1
    assert module._drop_last(list(range(10)), None, "train") is False  # 4 + 4 + 2
    assert module._drop_last(list(range(8)), None, "train") is False
    with pytest.raises(ValueError, match="the train split holds 1 crystal"):
        module._drop_last([0], None, "train")
    assert module._drop_last([0], None, "val") is True  # left unscored, with a warning
    assert CrystalDataModule("default", batch_size=4)._drop_last(list(range(9)), None, "train") is False
