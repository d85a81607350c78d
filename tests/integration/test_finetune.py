"""task=finetune end to end: from a pretrained checkpoint, at its cutoff, with baselines, plots and resume."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

import contrast

TINY = ["experiment=smoke", "logger=none", "encoder=schnet"]


@pytest.mark.slow
def test_finetune_run_reports_baselines_plots_and_resumes(tmp_path):
    contrast.run_training([*TINY, "trainer.max_epochs=1", "data.cutoff=4.0"], run_dir=tmp_path / "pretrain")
    checkpoint = tmp_path / "pretrain" / "checkpoints" / "last.ckpt"
    run_dir = tmp_path / "finetune"
    overrides = [
        *TINY,
        "task=finetune",
        f"task.checkpoint={checkpoint}",
        "data=emt",
        "data.targets=[energy]",
        "task.readout=sum",
        "task.ema_decay=0.9",
        "task.freeze_epochs=1",
        "task.layer_decay=0.8",
    ]
    summary = contrast.run_training([*overrides, "trainer.max_epochs=2"], run_dir=run_dir)

    assert float(OmegaConf.load(run_dir / "config.yaml").data.cutoff) == 4.0  # the checkpoint's cutoff
    finetuned = contrast.load_encoder(run_dir / "checkpoints" / "last.ckpt")
    assert finetuned.cutoff == 4.0
    scores = summary["finetune"]["energy"]
    assert {"mae", "rmse", "r2", "best_composition", "vs_best_composition"} <= set(scores)
    assert scores["mae"] == pytest.approx(summary["test"]["test/mae"], rel=1e-3)  # one model, one number
    for features in ("fractions", "statistics"):
        for probe in ("linear", "knn", "mlp"):
            assert {"mae", "rmse", "r2"} <= set(summary["baselines"]["energy"][features][probe])
    assert summary["finetune"]["split"]["test"] == summary["baselines"]["probe_split"]["test"] > 0
    assert (run_dir / "plots_energy" / "finetune_parity.png").stat().st_size > 0
    written = json.loads((run_dir / "metrics.json").read_text())
    assert written["finetune"]["energy"]["mae"] == scores["mae"]
    pretrained = contrast.load_encoder(checkpoint).state_dict()
    assert any(not pretrained[k].equal(v) for k, v in finetuned.state_dict().items())

    resumed = contrast.run_training([*overrides, "trainer.max_epochs=3", "ckpt_path=last"], run_dir=run_dir)
    assert [row["epoch"] for row in resumed["history"]] == [0, 1, 2]
