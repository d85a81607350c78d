"""``benchmarks/label_efficiency.py`` end to end on a stand-in MP file: splits, both starts, outputs."""

from __future__ import annotations

import gzip
import json

import ase.io
import numpy as np
import pytest
import yaml

from contrast.data.io.emt import emt_structures

ENCODER = {"_target_": "contrast.nn.schnet.SchNet", "hidden_dim": 8, "num_layers": 1, "cutoff": 4.0}


@pytest.mark.slow
def test_label_efficiency_runs_both_starts_on_the_suite_split(
    benchmark_script, untrained_checkpoint, tmp_path
):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    structures = emt_structures(40, seed=3)
    for atoms in structures:
        atoms.info["e_form_per_atom"] = atoms.get_potential_energy() / len(atoms)
    with gzip.open(data_dir / "mp_train.extxyz.gz", "wt") as handle:
        ase.io.write(handle, structures, format="extxyz")
    checkpoint = tmp_path / "pretrained.ckpt"
    untrained_checkpoint(checkpoint, ENCODER)
    out = tmp_path / "out"
    args = [
        f"--data-dir={data_dir}",
        f"--checkpoint={checkpoint}",
        f"--out={out}",
        "--tasks=mp_e_form",
        "--fractions",
        "0.5",
        "1.0",
        "--seeds=0",
        "--steps=2",
        "--val-every=1",
        "--val=4",
        "--batch-size=8",
    ]
    bench = benchmark_script("label_efficiency")
    bench.main(args)

    runs = json.loads((out / "results.json").read_text())["runs"]
    assert [(r["fraction"], r["seed"]) for r in runs] == [(0.5, 0), (1.0, 0)]
    for row in runs:
        assert np.isfinite(row["pretrained_mae"]) and np.isfinite(row["scratch_mae"])
        assert row["ratio"] == pytest.approx(row["pretrained_mae"] / row["scratch_mae"])
    assert (out / "label_efficiency.png").stat().st_size > 0
    assert "| mp_e_form |" in (out / "label_efficiency.md").read_text()
    # the scratch start has the checkpoint's architecture and cutoff
    config = yaml.safe_load((out / "mp_e_form" / "scratch_f1_s0" / "config.yaml").read_text())
    assert config["encoder"]["_target_"] == ENCODER["_target_"]
    assert config["encoder"]["hidden_dim"] == 8 and config["encoder"]["num_layers"] == 1
    assert config["data"]["cutoff"] == 4.0 and config["task"]["checkpoint"] is None
    # nested training subsets; one validation and one test part for every run, disjoint from training
    folder = out / "mp_e_form"
    splits = {f: json.loads((folder / f"splits_f{f}_s0.json").read_text())["ids"] for f in ("0.5", "1")}
    assert set(splits["0.5"]["train"]) < set(splits["1"]["train"])
    for part in ("val", "test"):
        assert splits["0.5"][part] == splits["1"][part] and splits["1"][part]
        assert not set(splits["1"][part]) & set(splits["1"]["train"])
    # finished runs are read back, not repeated
    stamp = (out / "mp_e_form" / "pretrained_f1_s0" / "metrics.json").stat().st_mtime_ns
    bench.main(args)
    assert (out / "mp_e_form" / "pretrained_f1_s0" / "metrics.json").stat().st_mtime_ns == stamp
