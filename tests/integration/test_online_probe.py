"""Online quality curves: ridge probes on a suite's validation parts during pretraining, logged with their
ratio to a composition ridge, never reading a test part."""

from __future__ import annotations

import csv
import gzip
import json

import ase.io
import numpy as np
import pytest

from contrast.data.io.emt import emt_structures
from contrast.tasks.online_probe import ridge_gcv
from contrast.train import run_training


def write_mp_stand_in(folder) -> None:
    """``mp_train.extxyz.gz`` in ``folder``: 60 EMT structures labelled with their energy per atom."""
    structures = emt_structures(60, seed=3)
    for atoms in structures:
        atoms.info["e_form_per_atom"] = atoms.get_potential_energy() / len(atoms)
    with gzip.open(folder / "mp_train.extxyz.gz", "wt") as handle:
        ase.io.write(handle, structures, format="extxyz")


def test_ridge_gcv_matches_a_direct_solve():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)) * [1, 2, 3, 4, 0]  # a constant column is dropped
    y = x[:, :4] @ [1.0, -2.0, 0.5, 0.0] + 0.01 * rng.normal(size=60)
    predictions, alpha = ridge_gcv(x[:40], y[:40], x[40:])
    mean, std = x[:40, :4].mean(0), x[:40, :4].std(0)
    a, b = (x[:40, :4] - mean) / std, (x[40:, :4] - mean) / std
    weights = np.linalg.solve(a.T @ a + alpha * 40 * np.eye(4), a.T @ (y[:40] - y[:40].mean()))
    np.testing.assert_allclose(predictions, b @ weights + y[:40].mean(), rtol=1e-8)
    assert np.abs(predictions - y[40:]).mean() < 0.1


@pytest.mark.slow
def test_a_pretraining_run_logs_online_ratios_from_val_parts_only(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    write_mp_stand_in(folder)
    run_dir = tmp_path / "run"
    probe = "{suite: tiny, data_dir: %s, tasks: [mp_e_form], every_n_steps: 2, max_train: 40, max_val: 20}"
    run_training(
        [
            "experiment=smoke",
            "logger=csv",
            f"data.path={folder / 'mp_train.extxyz.gz'}",
            "data.split=composition",
            "data.fractions=[0.8,0.1,0.1]",
            "data.max_structures=null",
            "trainer.max_epochs=1",
            f"online_probe={probe % folder}",
        ],
        run_dir=run_dir,
    )
    rows = list(csv.DictReader(open(run_dir / "online_probe.csv")))
    assert [int(row["step"]) for row in rows][:2] == [2, 4] and len(rows) >= 2
    assert all(float(row["online/mp_e_form_ratio"]) > 0 for row in rows)
    assert (run_dir / "online_probe.png").stat().st_size > 0
    history = json.loads((run_dir / "metrics.json").read_text())["history"]
    assert "online/mp_e_form_ratio" in history[-1]
    logged = (run_dir / "logs" / "metrics.csv").read_text()
    assert "online/mp_e_form_mae" in logged


def test_the_probe_reads_train_and_val_parts_never_a_test_part(tmp_path):
    from contrast.data.splits import composition_split
    from contrast.evaluation.suite import SuiteData, parse_suite
    from contrast.tasks.online_probe import OnlineProbe

    write_mp_stand_in(tmp_path)
    probe = OnlineProbe("tiny", str(tmp_path), tasks=["mp_e_form"], max_train=1000, max_val=1000)
    data = probe._prepare(cutoff=4.0)["mp_e_form"]
    (spec,) = [s for s in parse_suite(probe.suite["tasks"]) if s.name == "mp_e_form"]
    dataset = SuiteData([spec], tmp_path, 4.0).dataset(spec)
    test = set(composition_split(dataset.formulas, spec.fractions, spec.seed)["test"])
    used = set(data["positions"]["train"]) | set(data["positions"]["val"])
    assert test and not used & test and data["positions"]["val"]


def test_a_preset_probe_without_its_files_is_left_out_with_a_warning_and_an_explicit_one_is_an_error(
    tmp_path,
):
    from omegaconf import OmegaConf

    from contrast.cli.train import online_probe

    (tmp_path / "mine.extxyz").write_text("")
    probe = {"suite": "tiny", "data_dir": None, "tasks": ["mp_e_form"]}
    cfg = OmegaConf.create({"online_probe": probe, "data": {"path": str(tmp_path / "mine.extxyz")}})
    assert online_probe(cfg, tmp_path) is None
    cfg.online_probe.data_dir = str(tmp_path)
    with pytest.raises(ValueError, match=r"online_probe.tasks \['mp_e_form'\]"):
        online_probe(cfg, tmp_path)
