"""Every reader option is a first-class ``data.`` key of the train and export commands."""

from __future__ import annotations

import csv
import json

import numpy as np
from hydra import compose, initialize_config_dir
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

from contrast import CONFIG_DIR
from contrast.cli.train import run_training


def structures_csv(path, n: int = 24) -> None:
    """A CSV whose CIF column is named ``structure`` and whose ids are in ``key``."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["key", "structure", "band_gap"])
        for k in range(n):
            a = 3.5 + 0.02 * k
            crystal = Structure(Lattice.cubic(a), ["Cu", "Ni"], [[0, 0, 0], [0.5, 0.5, 0.5]])
            writer.writerow([f"x{k}", str(CifWriter(crystal)), 0.1 * k])


def test_train_takes_cif_and_id_columns(tmp_path):
    path = tmp_path / "table.csv"
    structures_csv(path)
    overrides = [
        "experiment=smoke",
        "logger=none",
        f"data.path={path}",
        "data.cif_column=structure",
        "data.id_column=key",
        "trainer.max_epochs=1",
        "data.max_structures=null",
    ]
    run_training(overrides, run_dir=tmp_path / "run")
    ids = json.loads((tmp_path / "run" / "splits.json").read_text())["ids"]
    assert sorted(ids["train"] + ids["val"]) == sorted(f"x{k}" for k in range(24))


def test_export_takes_cif_and_id_columns(untrained_checkpoint, tmp_path):
    from contrast.cli.embed import _run

    path = tmp_path / "table.csv"
    structures_csv(path)
    checkpoint = tmp_path / "enc.ckpt"

    untrained_checkpoint(
        checkpoint, {"_target_": "contrast.nn.painn.PaiNN", "hidden_dim": 8, "num_layers": 1}
    )
    out = tmp_path / "emb.npz"
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "embed",
            overrides=[
                f"checkpoint={checkpoint}",
                f"data.path={path}",
                f"out={out}",
                "data.cif_column=structure",
                "data.id_column=key",
                "data.targets=[band_gap]",
                "device=cpu",
                "progress=false",
            ],
        )
    _run(cfg)
    rows = np.load(out, allow_pickle=False)
    assert list(rows["ids"][:3]) == ["x0", "x1", "x2"]
