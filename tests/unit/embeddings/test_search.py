"""``contrast.neighbours``: cosine-similarity search over structures or precomputed embeddings."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from ase.build import bulk

import contrast
from contrast.nn.painn import PaiNN


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return PaiNN(hidden_dim=16, num_layers=2, cutoff=4.0, num_rbf=8).double().eval()


def _crystals():
    return [
        bulk("Cu", "fcc", a=3.6),
        bulk("Si", "diamond", a=5.43),
        bulk("NaCl", "rocksalt", a=5.6),
        bulk("Fe", "bcc", a=2.87),
        bulk("MgO", "rocksalt", a=4.21),
        bulk("Al", "fcc", a=4.05) * (1, 1, 2),
    ]


def _rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_each_crystal_is_its_own_nearest_neighbour(encoder):
    crystals = _crystals()
    indices, similarities = contrast.neighbours(encoder, crystals, crystals, k=3)
    assert indices.shape == similarities.shape == (len(crystals), 3)
    assert indices.dtype == torch.long and similarities.dtype == torch.float64
    assert indices[:, 0].tolist() == list(range(len(crystals)))
    torch.testing.assert_close(similarities[:, 0], torch.ones(len(crystals), dtype=torch.float64))
    assert (similarities[:, :-1] >= similarities[:, 1:]).all()  # decreasing along each row


def test_rotating_the_query_changes_nothing(encoder):
    database = _crystals()
    rotated = []
    for seed, atoms in enumerate(database[:3]):
        atoms = atoms.copy()
        matrix = _rotation(seed)
        atoms.set_cell(atoms.cell.array @ matrix.T, scale_atoms=True)  # rotates the cell and the atoms
        rotated.append(atoms)
    expected = contrast.neighbours(encoder, database[:3], database, k=4)
    found = contrast.neighbours(encoder, rotated, database, k=4)
    assert torch.equal(found[0], expected[0])
    torch.testing.assert_close(found[1], expected[1], rtol=0, atol=1e-9)


def test_precomputed_embeddings_give_the_same_answer(encoder):
    crystals = _crystals()
    embeddings = contrast.embed(encoder, crystals)
    by_structure = contrast.neighbours(encoder, crystals[:2], crystals, k=2)
    for database in (embeddings, embeddings.numpy(), {"embeddings": embeddings.numpy().astype(np.float32)}):
        indices, similarities = contrast.neighbours(None, embeddings[:2].numpy(), database, k=2)
        assert torch.equal(indices, by_structure[0])
        torch.testing.assert_close(similarities, by_structure[1], rtol=0, atol=1e-6)
    one = contrast.neighbours(None, embeddings[1], embeddings, k=1)  # a single query [D]
    assert one[0].shape == (1, 1) and int(one[0][0, 0]) == 1


def test_equal_similarities_keep_database_order():
    database = torch.tensor([[0.0, 1.0], [1.0, 0.0], [2.0, 0.0], [1.0, 1.0]])
    indices, similarities = contrast.neighbours(None, torch.tensor([1.0, 0.0]), database, k=3)
    assert indices.tolist() == [[1, 2, 3]]
    torch.testing.assert_close(similarities[0, :2], torch.ones(2, dtype=torch.float64))


def test_k_larger_than_the_database_is_an_error():
    database = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"k=5 but the database holds 4 crystals"):
        contrast.neighbours(None, database, database, k=5)
    with pytest.raises(ValueError, match=r"k=0"):
        contrast.neighbours(None, database, database, k=0)


def test_bad_inputs_are_named(encoder):
    with pytest.raises(ValueError, match="width 3 but the database's have 2"):
        contrast.neighbours(None, torch.randn(2, 3), torch.randn(4, 2), k=1)
    with pytest.raises(ValueError, match="database embedding 2 is NaN"):
        contrast.neighbours(None, torch.randn(2, 3), torch.tensor([[1.0, 0, 0]] * 2 + [[np.nan, 0, 0]]), k=1)
    with pytest.raises(ValueError, match="pass the encoder"):
        contrast.neighbours(None, _crystals()[:1], torch.randn(4, 16), k=1)


def test_the_search_module_stays_light():
    code = (
        "import sys, contrast.embeddings.search, contrast.export, contrast.embeddings.files; "
        "heavy = [m for m in ('pytorch_lightning', 'lightning', 'hydra') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
