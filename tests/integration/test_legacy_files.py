"""Checkpoints and embedding files written before the package layout changed still load and give the same
numbers (the reference values were computed by the code that wrote them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from ase import Atoms

import contrast

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy"


def reference() -> tuple[dict, Atoms]:
    values = json.loads((LEGACY / "reference.json").read_text())
    atoms = Atoms(numbers=values["numbers"], positions=values["positions"], cell=values["cell"], pbc=True)
    return values, atoms


def test_an_old_encoder_checkpoint_embeds_as_before():
    values, atoms = reference()
    encoder = contrast.load_encoder(LEGACY / "contrastive.ckpt").double()
    embedding = contrast.embed(encoder, [atoms])[0]
    torch.testing.assert_close(embedding, torch.tensor(values["embedding"], dtype=torch.float64))


def test_an_old_energy_checkpoint_gives_the_same_energy_and_forces():
    values, atoms = reference()
    atoms.calc = contrast.load_calculator(LEGACY / "energy.ckpt")
    np.testing.assert_allclose(atoms.get_potential_energy(), values["energy"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), values["forces"], rtol=1e-8, atol=1e-12)


def test_an_old_embedding_file_reads():
    rows = contrast.read_embeddings(LEGACY / "embeddings.npz")
    assert rows["embeddings"].shape == (5, 16) and len(rows["ids"]) == 5
    assert rows["meta"]["format"] == "contrast.embeddings/1"


def test_an_old_training_checkpoint_resumes(tmp_path):
    from contrast.cli.train import run_training

    overrides = [
        "experiment=smoke",
        "logger=none",
        f"ckpt_path={LEGACY / 'contrastive.ckpt'}",
        "trainer.max_epochs=2",
    ]
    summary = run_training(overrides, run_dir=tmp_path / "resumed")
    assert summary["last_epoch"]["epoch"] == 1  # epoch 0 came from the checkpoint
