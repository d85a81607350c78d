"""Composition features, the random-encoder baseline and the probe figures."""

from __future__ import annotations

import importlib
import pkgutil
import warnings

import numpy as np
import pytest
import torch
from ase.build import bulk
from torch import nn
from torch_geometric.data import Data

from contrast.evaluation.probes import (
    ELEMENT_STATISTICS_NAMES,
    KNN_NORMALISE,
    composition_baseline,
    composition_features,
    confusion_matrix_plot,
    element_statistics,
    fit_knn_probe,
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
    features = composition_features(items)  # fractions by default; column Z holds element Z
    assert features.shape == (4, 119)
    np.testing.assert_allclose(features.sum(axis=1), 1.0)
    expected = np.zeros((4, 119))
    expected[0, [11, 17]] = expected[1, [11, 17]] = 0.5
    expected[2, 8], expected[2, 22] = 2 / 3, 1 / 3
    expected[3, 26], expected[3, 8] = 3 / 7, 4 / 7
    np.testing.assert_allclose(features, expected)
    statistics = composition_features(items, "statistics")
    assert statistics.shape == (4, len(ELEMENT_STATISTICS_NAMES)) and np.isfinite(statistics).all()
    np.testing.assert_array_equal(statistics, element_statistics(items))
    np.testing.assert_array_equal(statistics[0], statistics[1])  # supercell of the same crystal
    with pytest.raises(ValueError, match="entry 1: atomic number 0 outside"):
        composition_features([np.array([1]), np.array([0, 1])])
    with pytest.raises(ValueError, match="entry 0: no atoms"):
        composition_features([np.array([], dtype=int)], "statistics")
    with pytest.raises(ValueError, match="features must be one of"):
        composition_features(items, "magpie")


def test_composition_baseline_learns_a_composition_property():
    rng = np.random.default_rng(0)
    z_lists = [rng.choice([3, 8, 26], size=rng.integers(2, 8)) for _ in range(60)]
    y = np.array([(z == 26).mean() * 2.0 - (z == 3).mean() for z in z_lists])  # linear in the fractions
    for features in ("fractions", "statistics"):  # three elements: both sets hold the fractions linearly
        result = composition_baseline(z_lists[:45], y[:45], z_lists[45:], features=features)
        assert np.abs(result.pred - y[45:]).max() < 1e-2, features


def doped_hosts(seed: int, n: int = 240):
    """Binary hosts of six common elements, half with one atom of a rare dopant; y depends on the host."""
    rng = np.random.default_rng(seed)
    value = rng.normal(size=119)
    items = []
    for _ in range(n):
        host = rng.choice(np.arange(3, 9), size=2, replace=False)
        atoms = list(np.repeat(host, rng.integers(1, 4, size=2)))
        if rng.random() < 0.5:
            atoms.append(rng.integers(20, 60))
        items.append(np.array(atoms))
    fractions = composition_features(items)
    return items, fractions[:, 3:9] @ value[3:9], fractions


def test_knn_on_fractions_uses_unit_norm_rows(monkeypatch):
    # Standardising sparse fractions gives a rare dopant's column a huge weight, so neighbours share the
    # dopant rather than the host; unit-norm rows are the fair treatment.
    assert KNN_NORMALISE == {"fractions": "l2", "statistics": "standard"}
    items, y, fractions = doped_hosts(0)
    mae = {}
    for normalise in ("l2", "standard"):
        result = fit_knn_probe(fractions[:160], y[:160], fractions[160:], ks=[5], normalise=normalise)
        mae[normalise] = np.abs(result.pred - y[160:]).mean()
    assert mae["l2"] < 0.8 * mae["standard"]
    # composition_baseline hands each feature set its own treatment (recorded, not refitted: kNN CV is slow).
    import contrast.evaluation.probes.baselines as baselines

    calls = []

    def record(x_train, y_train, x_test, **options):
        calls.append((x_train.shape[1], options["normalise"]))
        return options

    monkeypatch.setattr(baselines, "fit_knn_probe", record)
    for features in ("fractions", "statistics"):
        composition_baseline(items[:160], y[:160], items[160:], probe="knn", features=features)
    assert calls == [(119, "l2"), (len(ELEMENT_STATISTICS_NAMES), "standard")]
    with pytest.raises(ValueError, match="probe must be"):
        composition_baseline(items[:160], y[:160], items[160:], probe="svm")


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
        assert not torch.isclose(parameter, dict(trained.named_parameters())[name]).any(), name
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


class Scaled(nn.Module):
    """Trained parameters that are constant (a scalar, a uniform vector) and covered by no reset."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 4)
        self.temperature = nn.Parameter(torch.tensor(2.5))
        self.offset = nn.Parameter(torch.full((4,), 0.75))


def test_random_encoder_like_redraws_constant_trained_parameters():
    trained = Scaled()
    with pytest.warns(UserWarning, match="temperature.*offset"):
        fresh = random_encoder_like(trained, seed=0)
    assert fresh.temperature.item() != 2.5
    assert (fresh.offset != 0.75).all()
    assert torch.isfinite(fresh.temperature) and torch.isfinite(fresh.offset).all()


def encoder_classes() -> dict[str, type]:
    """Every CrystalEncoder subclass defined in contrast.nn."""
    import contrast.nn
    from contrast.nn.base import CrystalEncoder

    found = {}
    for info in pkgutil.iter_modules(contrast.nn.__path__):
        module = importlib.import_module(f"contrast.nn.{info.name}")
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, CrystalEncoder)
                and obj.__module__ == module.__name__
            ):
                found[obj.__name__] = obj
    found.pop("CrystalEncoder", None)
    return found


ENCODER_NAMES = ("CGCNN", "PaiNN", "SchNet")


def test_every_encoder_class_is_checked():
    assert sorted(encoder_classes()) == sorted(ENCODER_NAMES)


@pytest.mark.parametrize("name", ENCODER_NAMES)
def test_random_encoder_like_leaks_no_trained_parameter(name):
    """Every parameter of the baseline differs from the trained one, element by element.

    The only parameters whose init is a constant are LayerNorm's (weight ones, bias zeros; CGCNN's norms):
    after "training" moved every trained weight away from its init, those must equal their init again, not
    the trained values. No parameter may need the fallback redraw (every one has a ``reset_parameters``).
    """
    torch.manual_seed(0)
    trained = encoder_classes()[name](hidden_dim=16, num_layers=2, cutoff=3.0, num_rbf=8, max_z=20).double()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in trained.parameters():
            noise = torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype)
            parameter.add_(0.5 + 0.1 * noise)  # "training": every weight moves away from any init
    trained_values = {key: value.clone() for key, value in trained.named_parameters()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback redraw
        fresh = random_encoder_like(trained, seed=0)
    constant = {}
    for module_name, module in fresh.named_modules():
        if isinstance(module, nn.LayerNorm):
            constant[f"{module_name}.weight"] = torch.ones_like(module.weight)
            constant[f"{module_name}.bias"] = torch.zeros_like(module.bias)
    for key, parameter in fresh.named_parameters():
        assert torch.isfinite(parameter).all(), key
        assert (parameter != trained_values[key]).all(), f"{key} keeps trained values"
        if key in constant:
            assert torch.equal(parameter, constant[key]), key
        else:
            assert not (parameter == parameter.reshape(-1)[0]).all(), f"{key} looks like no fresh draw"
    for key, value in trained.named_parameters():
        assert torch.equal(value, trained_values[key])  # the trained encoder is untouched
    for (key, buffer), (_, kept) in zip(fresh.named_buffers(), trained.named_buffers()):
        assert torch.equal(buffer, kept), key
    assert type(fresh) is type(trained) and fresh.cutoff == trained.cutoff


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
