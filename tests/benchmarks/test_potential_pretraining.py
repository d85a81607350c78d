"""``benchmarks/potential_pretraining.py`` end to end on a stand-in mlearn file: the preset's validation
blocks, nested training subsets, the three starts under one budget, and the table and figure."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from contrast.data.io.emt import emt_structures
from contrast.data.splits import load_split

ENCODER = {"_target_": "contrast.nn.painn.PaiNN", "hidden_dim": 8, "num_layers": 1, "cutoff": 5.0}


def _mlearn_like(path, n: int = 60) -> None:
    frames = []
    for k, atoms in enumerate(emt_structures(num_structures=n, seed=5, elements=["Cu"])):
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        atoms.info["group"] = "AIMD" if k < 40 else "Vacancy"
        frames.append(atoms)
    with gzip.open(path, "wt") as handle:
        write(handle, frames, format="extxyz")


def test_split_files_share_the_validation_part_and_nest_the_training_frames(benchmark_script, tmp_path):
    bench = benchmark_script("potential_pretraining")
    data = tmp_path / "mlearn_Cu_train.extxyz.gz"
    _mlearn_like(data)
    ids, groups, preset = bench.preset_split(data, block_size=2)
    plan = bench.write_split_files(data, [0.25, 1.0], [0, 1], tmp_path / "Cu", block_size=2)
    assert plan["val"] == len(preset["val"]) and plan["pool"] == len(preset["train"])
    for seed in (0, 1):
        small = load_split(plan["files"][(0.25, seed)][0], ids)
        full = load_split(plan["files"][(1.0, seed)][0], ids)
        assert small["val"] == full["val"] == preset["val"]  # one validation part for every run
        assert set(small["train"]) < set(full["train"]) == set(preset["train"])
        assert not set(full["train"]) & set(full["val"])
        assert len(small["train"]) == round(0.25 * len(preset["train"]))
    # blocks of 2 consecutive frames of a group: every validation frame has its block with it; both groups
    val = set(preset["val"])
    assert all(v - v % 2 in val and v - v % 2 + 1 in val for v in val)
    assert {groups[v] for v in val} == {"AIMD", "Vacancy"}


@pytest.mark.slow
def test_three_starts_train_under_one_budget_and_report(benchmark_script, untrained_checkpoint, tmp_path):
    bench = benchmark_script("potential_pretraining")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    _mlearn_like(data_dir / "mlearn_Cu_train.extxyz.gz")
    checkpoint = tmp_path / "pretrained.ckpt"
    untrained_checkpoint(checkpoint, ENCODER, seed=1)
    out = tmp_path / "out"
    bench.main(
        [
            "--data-dir", str(data_dir), "--out", str(out), "--elements", "Cu",
            "--fractions", "0.5", "1.0", "--seeds", "0", "--minutes", "0.08",
            "--checkpoint", str(checkpoint), "--block-size", "2",
            "--override", "encoder.hidden_dim=8", "encoder.num_layers=1", "data.batch_size=8",
        ]
    )  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    assert sorted((r["fraction"], r["arm"]) for r in results) == sorted(
        (f, arm) for f in (0.5, 1.0) for arm in bench.ARMS
    )
    for r in results:
        assert np.isfinite(r["force_mae"]) and np.isfinite(r["energy_mae"])
        assert {"AIMD", "Vacancy", "all"} <= set(r["by_group"])
        config = (out / "Cu" / f"f{r['fraction']:g}_s0_{r['arm']}" / "config.yaml").read_text()
        assert "max_time: 00:00:00:05" in config
        assert ("freeze_encoder: true" in config) == (r["arm"] == "frozen")
        assert (str(checkpoint) in config) == (r["arm"] != "scratch")
    table = (out / "potential_pretraining.md").read_text()
    assert table.count("| scratch | ") == 2 and "| 1.000 |" in table
    assert (out / "potential_pretraining.png").stat().st_size > 10_000
    # finished runs are read back, not repeated
    before = (out / "Cu" / "f1_s0_scratch" / "metrics.json").stat().st_mtime
    bench.main(
        [
            "--data-dir", str(data_dir), "--out", str(out), "--elements", "Cu",
            "--fractions", "0.5", "1.0", "--seeds", "0", "--minutes", "0.08",
            "--checkpoint", str(checkpoint), "--block-size", "2",
        ]
    )  # fmt: skip
    assert (out / "Cu" / "f1_s0_scratch" / "metrics.json").stat().st_mtime == before
