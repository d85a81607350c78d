"""An energy run on a file whose frames carry a group label: split by blocks of each group, validation
errors reported per group in metrics.json, and never one block on both sides."""

from __future__ import annotations

import json

import ase.io
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from contrast.train import run_training


def labelled_frames(path, groups: dict[str, int]) -> None:
    frames = []
    for group, count in groups.items():
        for _ in range(count):
            atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
            atoms.rattle(0.05, seed=len(frames))
            atoms.info["group"] = group
            atoms.calc = EMT()
            atoms.get_potential_energy()
            frames.append(atoms)
    ase.io.write(path, frames, format="extxyz")


@pytest.mark.slow
def test_an_energy_run_reports_validation_errors_per_group(tmp_path):
    path = tmp_path / "labelled.extxyz"
    labelled_frames(path, {"md": 12, "vacancy": 8})
    run_dir = tmp_path / "run"
    run_training(
        [
            "experiment=smoke",
            "task=energy",
            "logger=none",
            f"data.path={path}",
            "data.group_key=group",
            "data.split=blocks",
            "data.block_size=2",
            "data.fractions=[0.5,0.5,0.0]",
            "data.targets=null",
            "trainer.max_epochs=1",
        ],
        run_dir=run_dir,
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    by_group = metrics["val_by_group"]
    assert set(by_group) == {"all", "md", "vacancy"}
    assert by_group["all"]["structures"] == by_group["md"]["structures"] + by_group["vacancy"]["structures"]
    assert all(row["energy_mae_per_atom"] >= 0 and row["force_mae"] > 0 for row in by_group.values())
    splits = json.loads((run_dir / "splits.json").read_text())
    train, val = set(splits["train"]), set(splits["val"])
    for start in range(0, 20, 2):  # blocks of 2 frames, each group starting at a block boundary
        block = {start, start + 1}
        assert block <= train or block <= val
