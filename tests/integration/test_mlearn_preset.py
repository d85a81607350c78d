"""``experiment=mlearn``: the interatomic-potential preset composes, trains on an energy + forces file, scales
the head by the training energies or forces, decays the rate over its budget and keeps the last weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

import contrast
from contrast.data.io.emt import emt_structures
from contrast.data.splits import load_split


def _labelled_file(path, n: int = 24) -> list:
    frames = []
    for k, atoms in enumerate(emt_structures(num_structures=n, seed=3, elements=["Cu"])):
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        atoms.info["group"] = "AIMD" if k < n // 2 else "Elastic"  # as the mlearn files label their frames
        frames.append(atoms)
    write(path, frames, format="extxyz")
    return frames


@pytest.mark.parametrize("scale", ["energy", "forces"])
def test_mlearn_preset_trains_one_epoch_and_scales_the_head(tmp_path, scale):
    data = tmp_path / "Cu_train.extxyz"
    frames = _labelled_file(data)
    run_dir = tmp_path / "run"
    summary = contrast.run_training(
        [
            "experiment=mlearn",
            f"data.path={data}",
            "logger=none",
            "trainer.max_epochs=1",
            "encoder.hidden_dim=16",
            "encoder.num_layers=2",
            f"task.energy_scale={scale}",
            "data.block_size=2",  # 6 blocks per group: one of each group to validation
        ],
        run_dir=run_dir,
    )
    config = (run_dir / "config.yaml").read_text()
    assert "kind: cosine_time" in config and "max_time: 00:00:30:00" in config
    # from scratch, with the encoder group's architecture (16 x 2 here)
    trained = contrast.load_encoder(run_dir / "checkpoints" / "last.ckpt")
    assert trained.hidden_dim == 16 and len(trained.messages) == 2
    last = summary["last_epoch"]
    assert np.isfinite(last["val/energy_mae_per_atom"]) and np.isfinite(last["val/force_mae"])
    # validation in blocks of each group, reported per group
    assert "split: blocks" in config and "group_key: group" in config
    by_group = json.loads((run_dir / "metrics.json").read_text())["val_by_group"]
    assert {"AIMD", "Elastic", "all"} <= set(by_group)
    # the model is the last weights, at the end of the schedule: no best-epoch restore
    assert "restored_best" not in summary
    assert not (run_dir / "checkpoints" / "best.ckpt").exists()
    model_file = run_dir / "checkpoints" / "last.ckpt"
    # the head's per-atom scale, computed independently on the training part: the std of the energy per atom
    # left after the one-element reference (least squares over atom counts), or the RMS force component
    train = load_split(run_dir / "splits.json")["train"]
    state = torch.load(model_file, map_location="cpu", weights_only=True)["state_dict"]
    if scale == "forces":
        forces = np.concatenate([frames[i].get_forces().ravel() for i in train])
        expected = np.sqrt(np.mean(forces**2))
    else:
        counts = np.array([[len(frames[i])] for i in train], dtype=float)
        energies = np.array([frames[i].get_potential_energy() for i in train])
        reference = np.linalg.lstsq(counts, energies, rcond=None)[0]
        expected = ((energies - counts @ reference) / counts[:, 0]).std()
    np.testing.assert_allclose(float(state["model.head.scale"]), expected, rtol=1e-5)
    assert "restored_best" not in json.loads((run_dir / "metrics.json").read_text())
