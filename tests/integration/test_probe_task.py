"""task=probe end to end: frozen MLP probe plus scikit-learn probes, each next to its two baselines."""

from __future__ import annotations

import pytest

import contrast

TINY = ["experiment=smoke", "logger=none", "trainer.max_epochs=1"]


@pytest.mark.slow
def test_probe_reports_baselines_and_plots(tmp_path):
    contrast.run_training([*TINY, "encoder=schnet"], run_dir=tmp_path / "pretrain")
    checkpoint = tmp_path / "pretrain" / "checkpoints" / "last.ckpt"
    run_dir = tmp_path / "probe"
    summary = contrast.run_training(
        [*TINY, "task=probe", f"task.checkpoint={checkpoint}", "data=emt", "data.targets=[energy]"],
        run_dir=run_dir,
    )
    report = summary["energy"]
    for features in ("pretrained", "random_encoder", "fractions", "statistics"):
        for probe in ("linear", "knn", "mlp"):
            assert {"mae", "rmse", "r2"} <= set(report[features][probe])
    assert summary["probe_split"]["test"] > 0
    assert "test/mae" in summary["test"]  # the Lightning MLP head, scored on the same held-out split
    assert list((run_dir / "plots_energy").glob("*.png"))
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    # The probe's encoder is the pretrained one, frozen.
    pretrained = contrast.load_encoder(checkpoint).state_dict()
    probed = contrast.load_encoder(run_dir / "checkpoints" / "last.ckpt").state_dict()
    assert all(pretrained[k].equal(probed[k]) for k in pretrained)
