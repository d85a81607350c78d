"""Foundation-model adapters: run where their package is installed, skipped cleanly where it is not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk

import contrast
from contrast.pretrained.foundation import FOUNDATION_MODELS, foundation_encoder


def test_an_unknown_foundation_name_is_a_clear_error():
    with pytest.raises(KeyError, match="known: \\['chgnet', 'sevennet'\\]"):
        foundation_encoder("no-such-model")


def test_a_missing_package_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "chgnet", None)
    monkeypatch.setitem(sys.modules, "chgnet.model", None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[chgnet\]'"):
        contrast.load_encoder("chgnet")


@pytest.fixture(scope="module")
def chgnet():
    pytest.importorskip("chgnet")
    encoder = contrast.load_encoder("chgnet")
    encoder.pooling = "mean+std+max"
    return encoder


def _rotated(atoms, seed: int):
    """``atoms`` with cell and positions turned by a random proper rotation."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    rotation = q * np.sign(np.linalg.det(q))
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell[:] @ rotation.T, scale_atoms=False)
    rotated.positions = atoms.positions @ rotation.T
    return rotated


def test_chgnet_embeddings_are_invariant_to_rotation_and_supercell(chgnet):
    assert "chgnet" in FOUNDATION_MODELS and chgnet.embedding_dim == 3 * 64
    atoms = bulk("NaCl", "rocksalt", a=5.64)
    atoms.rattle(0.05, seed=0)
    rotated = _rotated(atoms, 1)
    supercell = atoms * (2, 1, 1)
    embeddings = contrast.embed(chgnet, [atoms, rotated, supercell]).double()
    assert embeddings.shape == (3, chgnet.embedding_dim)
    torch.testing.assert_close(embeddings[1], embeddings[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(embeddings[2], embeddings[0], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(embeddings[0], contrast.embed(chgnet, bulk("Cu", "fcc", a=3.6))[0].double())


def test_chgnet_works_in_neighbours_and_export(chgnet, tmp_path):
    import ase.io

    frames = [bulk("Cu", "fcc", a=3.6), bulk("Ni", "fcc", a=3.5), bulk("NaCl", "rocksalt", a=5.64)]
    indices, _ = contrast.neighbours(chgnet, frames[0], frames, k=2)
    assert int(indices[0, 0]) == 0
    path = tmp_path / "three.extxyz"
    ase.io.write(path, frames, format="extxyz")
    rows = contrast.embed_file(chgnet, str(path), out=None, device="cpu", cache_dir=str(tmp_path / "c"))
    assert rows["embeddings"].shape == (3, chgnet.embedding_dim)


def test_the_fresh_baseline_is_chgnet_as_built_before_training(chgnet):
    from contrast.evaluation.probes.baselines import random_encoder_like

    fresh = random_encoder_like(chgnet, seed=0)
    again = random_encoder_like(chgnet, seed=0)
    trained = dict(chgnet.named_parameters())
    for name, parameter in fresh.named_parameters():
        assert parameter.shape == trained[name].shape
        torch.testing.assert_close(parameter, dict(again.named_parameters())[name])
    assert not torch.allclose(
        dict(fresh.named_parameters())["model.atom_embedding.embedding.weight"],
        trained["model.atom_embedding.embedding.weight"],
    )


@pytest.fixture(scope="module")
def sevennet():
    pytest.importorskip("sevenn")
    encoder = contrast.load_encoder("sevennet")
    encoder.pooling = "mean+std+max"
    return encoder


def test_sevennet_embeddings_are_invariant_and_its_fresh_baseline_is_seeded(sevennet):
    from contrast.evaluation.probes.baselines import random_encoder_like

    atoms = bulk("NaCl", "rocksalt", a=5.64)
    atoms.rattle(0.05, seed=0)
    rotated = _rotated(atoms, 2)
    embeddings = contrast.embed(sevennet, [atoms, rotated, atoms * (1, 2, 1)]).double()
    assert embeddings.shape == (3, 3 * sevennet.hidden_dim)
    torch.testing.assert_close(embeddings[1], embeddings[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(embeddings[2], embeddings[0], atol=1e-4, rtol=1e-4)
    fresh, again = random_encoder_like(sevennet, seed=0), random_encoder_like(sevennet, seed=0)
    torch.testing.assert_close(contrast.embed(fresh, atoms), contrast.embed(again, atoms))
    assert not torch.allclose(contrast.embed(fresh, atoms), contrast.embed(sevennet, atoms))


def test_sevennet_names_an_element_it_does_not_embed(sevennet):
    from contrast.graph import StructureError

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.symbols[0] = "Fm"  # Z = 100: within contrast's encoders, outside SevenNet-0's 89 elements
    with pytest.raises(StructureError, match="SevenNet-0 does not embed Fm"):
        contrast.embed(sevennet, [atoms])
