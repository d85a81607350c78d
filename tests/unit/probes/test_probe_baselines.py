"""Composition features, the random-encoder baseline and the probe figures."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from ase.build import bulk
from torch import nn
from torch_geometric.data import Data

from contrast.probes import (
    composition_baseline,
    composition_features,
    confusion_matrix_plot,
    parity_plot,
    random_encoder_like,
)


def test_composition_features_from_every_input_kind():
    from pymatgen.io.ase import AseAtomsAdaptor

    rocksalt = bulk("NaCl", "rocksalt", a=5.64)
    items = [
        rocksalt.repeat((2, 1, 1)),
        AseAtomsAdaptor.get_structure(rocksalt),
        Data(z=torch.tensor([8, 22, 8])),
        np.array([26, 26, 26, 8, 8, 8, 8]),
    ]
    features = composition_features(items)
    assert features.shape == (4, 118)
    np.testing.assert_allclose(features.sum(axis=1), 1.0)
    expected = np.zeros((4, 118))
    expected[0, [10, 16]] = expected[1, [10, 16]] = 0.5  # Na (Z=11), Cl (Z=17)
    expected[2, 7], expected[2, 21] = 2 / 3, 1 / 3
    expected[3, 25], expected[3, 7] = 3 / 7, 4 / 7
    np.testing.assert_allclose(features, expected)
    with pytest.raises(ValueError, match="entry 1: atomic number outside"):
        composition_features([np.array([1]), np.array([0, 1])])
    with pytest.raises(ValueError, match="entry 0: no atoms"):
        composition_features([np.array([], dtype=int)])


def test_composition_baseline_learns_a_composition_property():
    rng = np.random.default_rng(0)
    z_lists = [rng.choice([3, 8, 26], size=rng.integers(2, 8)) for _ in range(60)]
    y = np.array([(z == 26).mean() * 2.0 - (z == 3).mean() for z in z_lists])  # linear in the fractions
    result = composition_baseline(z_lists[:45], y[:45], z_lists[45:])
    assert np.abs(result.pred - y[45:]).max() < 1e-2


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(3, 8), nn.LayerNorm(8), nn.Linear(8, 4))
        self.embedding = nn.Embedding(10, 4)
        self.custom = nn.Parameter(torch.randn(4, 4))  # no reset_parameters covers this one
        self.register_buffer("centres", torch.linspace(0, 1, 4))


def test_random_encoder_like_reinitialises_everything():
    torch.manual_seed(0)
    trained = Net().eval()
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(3.0)  # "training": every weight moves away from any init
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    state = torch.random.get_rng_state()
    with pytest.warns(UserWarning, match="custom"):
        fresh = random_encoder_like(trained, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
    assert not fresh.training
    for key, value in trained.state_dict().items():
        assert torch.equal(value, before[key])  # the original is untouched
    for name, parameter in fresh.named_parameters():
        assert parameter.shape == dict(trained.named_parameters())[name].shape
        assert not torch.allclose(parameter, dict(trained.named_parameters())[name]), name
    assert torch.equal(fresh.centres, trained.centres)
    # LayerNorm resets to ones/zeros, and the linear layers to their default bounded uniform init.
    assert torch.equal(fresh.layers[1].weight, torch.ones(8))
    assert fresh.layers[0].weight.abs().max() <= 1 / np.sqrt(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = random_encoder_like(trained, seed=1)
        other = random_encoder_like(trained, seed=2)
    assert torch.equal(again.layers[0].weight, fresh.layers[0].weight)
    assert not torch.equal(other.layers[0].weight, fresh.layers[0].weight)


def test_random_encoder_like_on_a_real_encoder():
    schnet = pytest.importorskip("contrast.nn.schnet")
    encoder = schnet.SchNet(hidden_dim=8, num_layers=1, cutoff=3.0, num_rbf=8)
    fresh = random_encoder_like(encoder, seed=0)
    assert type(fresh) is type(encoder) and fresh.cutoff == encoder.cutoff
    changed = [not torch.equal(a, b) for a, b in zip(fresh.parameters(), encoder.parameters())]
    assert sum(changed) >= len(changed) // 2


def test_plots_write_pngs(tmp_path):
    import matplotlib.image

    rng = np.random.default_rng(0)
    y = rng.normal(size=30)
    path = parity_plot(
        y, y + 0.1 * rng.normal(size=30), tmp_path / "sub" / "parity.png", title="band gap", unit="eV"
    )
    assert matplotlib.image.imread(path).ndim == 3
    labels = np.array(["cubic", "hexagonal", "cubic", "tetragonal"])
    path = confusion_matrix_plot(
        labels, np.array(["cubic", "cubic", "cubic", "tetragonal"]), tmp_path / "cm.png"
    )
    assert path.read_bytes()[:4] == b"\x89PNG"
