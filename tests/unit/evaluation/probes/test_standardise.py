"""The probes' standardisation: ordinary features as numpy computes them, round-off features zeroed."""

import numpy as np
import pytest
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from contrast.evaluation.probes.common import Standardise
from contrast.evaluation.probes.knn import fit_knn_probe
from contrast.evaluation.probes.linear import RIDGE_ALPHAS, fit_linear_probe
from contrast.evaluation.probes.mlp import fit_mlp_probe


def _features_with_round_off(seed: int = 0, n: int = 40, d: int = 60):
    """More features than rows (768 features on 172 mlearn Si structures), noisy targets of three of them, and
    a column 1e-4 + ~1e-12 noise (the float32 std pooling of identical atoms) whose test rows carry a larger
    round-off offset, 5,000 training spreads away, as one mlearn Si test structure did."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n + 20, d))
    y = X[:, :3] @ rng.normal(size=3) + 0.3 * rng.normal(size=n + 20)
    floor = 1e-4 + 1e-12 * rng.normal(size=(n + 20, 1))
    floor[n:] += 5e-9
    X = np.hstack([X, floor])
    return X[:n], y[:n], X[n:], y[n:]


def test_standardise_matches_numpy_on_ordinary_features():
    rng = np.random.default_rng(1)
    X = rng.normal(loc=3.0, scale=[0.5, 2.0, 1e-3], size=(50, 3))
    Z = Standardise().fit(X).transform(X[:7])
    expected = (X[:7] - X.mean(axis=0)) / X.std(axis=0)
    np.testing.assert_allclose(Z, expected, rtol=1e-12)


def test_standardise_zeroes_constant_and_round_off_features():
    X_train, _, X_test, _ = _features_with_round_off()
    X_train = np.hstack([X_train, np.full((len(X_train), 1), 2.5)])
    X_test = np.hstack([X_test, np.full((len(X_test), 1), 2.5 + 1e-9)])
    scaler = Standardise().fit(X_train)
    assert scaler.kept_.tolist() == [True] * 60 + [False, False]
    Z = scaler.transform(X_test)
    assert np.all(Z[:, 60:] == 0.0)
    assert np.abs(Z[:, :60]).max() < 10


def test_standardise_refuses_another_width():
    scaler = Standardise().fit(np.random.default_rng(0).normal(size=(10, 3)))
    with pytest.raises(ValueError, match=r"\[n, 3\]"):
        scaler.transform(np.zeros((2, 4)))


def test_plain_standardisation_fails_on_this_data():
    """The fixture reproduces the failure: StandardScaler before ridge errs by tens of units."""
    X_train, y_train, X_test, y_test = _features_with_round_off()
    plain = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS)).fit(X_train, y_train)
    ours = fit_linear_probe(X_train, y_train, X_test).pred
    assert np.abs(plain.predict(X_test) - y_test).mean() > 10 * np.abs(ours - y_test).mean()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fit", [fit_linear_probe, fit_knn_probe])
def test_linear_and_knn_probes_ignore_round_off_features(fit, seed):
    X_train, y_train, X_test, y_test = _features_with_round_off(seed)
    with_floor = fit(X_train, y_train, X_test).pred
    without = fit(X_train[:, :-1], y_train, X_test[:, :-1]).pred
    np.testing.assert_allclose(with_floor, without, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mlp_probe_is_not_thrown_by_round_off_features(seed):
    """The zeroed column changes the MLP's random start, so its error is compared, not its predictions."""
    X_train, y_train, X_test, y_test = _features_with_round_off(seed)
    with_floor = np.abs(fit_mlp_probe(X_train, y_train, X_test).pred - y_test).mean()
    without = np.abs(fit_mlp_probe(X_train[:, :-1], y_train, X_test[:, :-1]).pred - y_test).mean()
    assert with_floor < 1.5 * without
