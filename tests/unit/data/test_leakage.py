"""The data module's leakage guard removes pretraining structures that appear in a probe's held-out split."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk

from contrast.data.datamodule import CrystalDataModule


def _rotated_supercell(atoms):
    copy = atoms.repeat((2, 1, 1))
    copy.rotate(37, "z", rotate_cell=True)
    copy.translate([0.3, 0.1, 0.2])
    copy.wrap()
    return copy[np.random.default_rng(0).permutation(len(copy))]


def test_overlap_with_the_probe_test_split_is_removed(tmp_path):
    copper, silicon, salt = (
        bulk("Cu", "fcc", a=3.6),
        bulk("Si", "diamond", a=5.43),
        bulk("NaCl", "rocksalt", a=5.6),
    )
    pretrain = [
        copper,
        silicon,
        salt,
        _rotated_supercell(copper),
        bulk("Al", "fcc", a=4.05),
        bulk("Cu", "bcc", a=2.9),
    ]
    probe = [bulk("Cu", "fcc", a=3.6, cubic=True), bulk("Ge", "diamond", a=5.65)]
    split_file = tmp_path / "probe_splits.json"
    split_file.write_text(json.dumps({"train": [1], "val": [], "test": [0]}))
    module = CrystalDataModule(
        pretrain,
        cutoff=4.0,
        split="random",
        fractions=(0.5, 0.5, 0.0),
        output_dir=str(tmp_path / "run"),
        exclude_from={"source": probe, "split_file": str(split_file), "split": "test"},
    )
    module.setup("fit")
    kept = sorted(module.splits["train"] + module.splits["val"])
    # Both FCC copper entries (primitive and rotated supercell) match the probe's cubic FCC copper; BCC copper
    # has the same formula but another structure and stays.
    assert kept == [1, 2, 4, 5]
    report = json.loads((tmp_path / "run" / "leakage.json").read_text())
    assert report["removed_from_train"] + report["removed_from_val"] == 2


def pretraining_set() -> list:
    """Copies of three probe crystals in other cells, plus two crystals of no probe."""
    return [
        _rotated_supercell(bulk("Cu", "fcc", a=3.6)),
        _rotated_supercell(bulk("Ge", "diamond", a=5.65)),
        _rotated_supercell(bulk("Al", "fcc", a=4.05)),
        bulk("Si", "diamond", a=5.43),
        bulk("Ni", "fcc", a=3.52),
    ]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_guard_finds_the_held_out_structures_by_id_not_position(tmp_path, seed):
    """The probe run skipped an unlabelled entry, so its positions are shifted against the guard's re-read."""
    probe = [bulk("Al", "fcc", a=4.05), bulk("Cu", "fcc", a=3.6, cubic=True), bulk("Ge", "diamond", a=5.65)]
    for atoms in probe[1:]:
        atoms.info["band_gap"] = 0.5
    probe_run = CrystalDataModule(
        probe,
        cutoff=4.0,
        targets=["band_gap"],
        on_error="skip",
        fractions=(0.5, 0.0, 0.5),
        seed=seed,
        output_dir=str(tmp_path / "probe"),
    )
    probe_run.setup()
    held_out = probe_run.dataset.formulas[probe_run.splits["test"][0]]  # Cu or Ge
    module = CrystalDataModule(
        pretraining_set(),
        cutoff=4.0,
        fractions=(0.6, 0.4, 0.0),
        exclude_from={"source": probe, "split_file": str(tmp_path / "probe" / "splits.json")},
    )
    module.setup("fit")
    kept = {module.dataset.formulas[i] for i in module.splits["train"] + module.splits["val"]}
    assert kept == {"Cu", "Ge", "Al", "Si", "Ni"} - {held_out}
    assert module.leakage["held_out"] == 1 and module.leakage["held_out_missing"] == 0


def test_guard_counts_held_out_structures_it_cannot_find(tmp_path, caplog):
    probe = [bulk("Cu", "fcc", a=3.6, cubic=True), bulk("Ge", "diamond", a=5.65)]
    for k, atoms in enumerate(probe):
        atoms.info["id"] = f"p{k}"
    split_file = tmp_path / "probe_splits.json"
    split_file.write_text(
        json.dumps(
            {
                "train": [1],
                "val": [],
                "test": [0, 2],
                "ids": {"train": ["p1"], "val": [], "test": ["p0", "gone"]},
            }
        )
    )
    module = CrystalDataModule(
        pretraining_set(),
        cutoff=4.0,
        fractions=(0.6, 0.4, 0.0),
        output_dir=str(tmp_path / "run"),
        exclude_from={"source": probe, "split_file": str(split_file)},
    )
    module.setup("fit")
    report = json.loads((tmp_path / "run" / "leakage.json").read_text())
    assert report["held_out"] == 1 and report["held_out_missing"] == 1 and report["missing_ids"] == ["gone"]
    assert report["removed_from_train"] + report["removed_from_val"] == 1
    assert "1 of the 2 test structures" in caplog.text and "gone" in caplog.text


def test_guard_refuses_a_positions_only_file_that_does_not_cover_the_held_out_source(tmp_path):
    split_file = tmp_path / "old_splits.json"
    split_file.write_text(json.dumps({"train": [1], "val": [], "test": [0]}))
    probe = [
        bulk("Cu", "fcc", a=3.6, cubic=True),
        bulk("Ge", "diamond", a=5.65),
        bulk("Si", "diamond", a=5.43),
    ]
    module = CrystalDataModule(
        pretraining_set(), cutoff=4.0, exclude_from={"source": probe, "split_file": str(split_file)}
    )
    with pytest.raises(ValueError, match=r"old_splits\.json holds positions only"):
        module.setup("fit")
