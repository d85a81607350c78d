"""The data module's leakage guard removes pretraining structures that appear in a probe's held-out split."""

from __future__ import annotations

import json

import numpy as np
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
