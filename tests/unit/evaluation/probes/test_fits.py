"""Linear and kNN probes against closed-form or brute-force references, and the run_probes suite."""

from __future__ import annotations

import numpy as np
import pytest

from contrast.evaluation.probes import fit_knn_probe, fit_linear_probe, run_probes


@pytest.fixture(scope="session")
def regression_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 6)) * np.array([1, 2, 3, 0.5, 1, 10]) + 4.0
    w = rng.normal(size=6)
    y = X @ w + 0.05 * rng.normal(size=80) + 1.0
    return X[:60], y[:60], X[60:], y[60:]


@pytest.fixture(scope="session")
def blobs():
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0, 0, 0], [6, 0, 0, 0], [0, 6, 0, 0]], dtype=float)
    labels = np.repeat(np.array(["a", "b", "c"]), 30)
    X = centres[np.repeat(np.arange(3), 30)] + rng.normal(size=(90, 4))
    order = rng.permutation(90)
    X, labels = X[order], labels[order]
    return X[:60], labels[:60], X[60:], labels[60:]


def test_linear_regression_equals_closed_form_ridge(regression_data):
    X_train, y_train, X_test, y_test = regression_data
    result = fit_linear_probe(X_train, y_train, X_test, task="regression")
    alpha = result.params["alpha"]
    # Independent reference: standardise with the training statistics, solve the ridge normal equations.
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    A, B = (X_train - mean) / std, (X_test - mean) / std
    w = np.linalg.solve(A.T @ A + alpha * np.eye(6), A.T @ (y_train - y_train.mean()))
    np.testing.assert_allclose(result.pred, B @ w + y_train.mean(), atol=1e-8)
    assert np.abs(result.pred - y_test).mean() < 0.1
    assert result.proba is None


def test_linear_classification(blobs):
    X_train, y_train, X_test, y_test = blobs
    result = fit_linear_probe(X_train, y_train, X_test, task="classification", seed=3)
    assert list(result.classes) == ["a", "b", "c"]
    assert (result.pred == y_test).mean() > 0.9
    np.testing.assert_allclose(result.proba.sum(axis=1), 1.0)
    assert result.classes[result.proba.argmax(axis=1)].tolist() == result.pred.tolist()
    assert result.params["C"] > 0
    again = fit_linear_probe(X_train, y_train, X_test, task="classification", seed=3)
    np.testing.assert_array_equal(again.proba, result.proba)


def test_classification_edge_cases():
    X = np.random.default_rng(2).normal(size=(6, 3))
    only = fit_linear_probe(X, np.ones(6, dtype=int), X[:2], task="classification")
    assert only.pred.tolist() == [1, 1] and only.proba.shape == (2, 1)
    rare = fit_linear_probe(X, np.array([0, 0, 0, 0, 0, 1]), X[:2], task="classification")
    assert rare.proba.shape == (2, 2)


def test_knn_matches_brute_force(regression_data):
    X_train, y_train, X_test, _ = regression_data
    result = fit_knn_probe(X_train, y_train, X_test, ks=[3], normalise="standard")
    assert result.params == {"k": 3}
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    A, B = (X_train - mean) / std, (X_test - mean) / std
    distance = np.linalg.norm(B[:, None] - A[None], axis=-1)  # [m, n]
    nearest = np.argsort(distance, axis=1)[:, :3]
    weights = 1.0 / np.take_along_axis(distance, nearest, axis=1)
    expected = (weights * y_train[nearest]).sum(axis=1) / weights.sum(axis=1)
    np.testing.assert_allclose(result.pred, expected, atol=1e-10)


def test_knn_l2_and_cv_choice(blobs):
    X_train, y_train, X_test, y_test = blobs
    result = fit_knn_probe(X_train, y_train, X_test, task="classification", normalise="l2", ks=(1, 5, 500))
    assert result.params["k"] in (1, 5)
    assert (result.pred == y_test).mean() > 0.9
    assert result.proba.shape == (30, 3)
    # A training point is its own nearest neighbour at zero distance.
    exact = fit_knn_probe(X_train, y_train, X_train[:5], task="classification")
    assert exact.pred.tolist() == y_train[:5].tolist()
    with pytest.raises(ValueError, match="normalise"):
        fit_knn_probe(X_train, y_train, X_test, normalise="cosine")


def test_bad_inputs_are_named():
    X = np.ones((4, 2))
    with pytest.raises(ValueError, match="task"):
        fit_linear_probe(X, np.ones(4), X, task="ranking")
    with pytest.raises(ValueError, match="X_test: width 3"):
        fit_linear_probe(X, np.ones(4), np.ones((2, 3)))
    bad = X.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="X_train: NaN or infinite values in row 2"):
        fit_knn_probe(bad, np.ones(4), X)
    with pytest.raises(ValueError, match="y_train: expected 4"):
        fit_linear_probe(X, np.ones(3), X)


def test_run_probes_regression_and_plots(regression_data, tmp_path):
    X_train, y_train, X_test, y_test = regression_data
    results = run_probes(X_train, y_train, X_test, y_test, task="regression", plot_dir=tmp_path)
    assert set(results) == {"linear", "knn"}
    assert set(results["linear"]) == {"mae", "rmse", "r2", "alpha"}
    assert set(results["knn"]) == {"mae", "rmse", "r2", "k"}
    assert results["linear"]["r2"] > 0.99 and results["linear"]["mae"] < results["knn"]["mae"]
    assert (tmp_path / "linear_parity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "knn_parity.png").exists()


def test_run_probes_knn_normalise(regression_data):
    X_train, y_train, X_test, y_test = regression_data
    results = run_probes(
        X_train, y_train, X_test, y_test, probes=["knn"], knn_normalise="l2", return_predictions=True
    )
    l2 = fit_knn_probe(X_train, y_train, X_test, normalise="l2")
    np.testing.assert_array_equal(results["predictions"]["knn"].pred, l2.pred)
    assert results["predictions"]["knn"].model[0].__class__.__name__ == "Normalizer"
    with pytest.raises(ValueError, match="knn_normalise must be one of"):
        run_probes(X_train, y_train, X_test, y_test, knn_normalise="cosine")


def test_run_probes_classification(blobs, tmp_path):
    X_train, y_train, X_test, y_test = blobs
    results = run_probes(
        X_train, y_train, X_test, y_test, task="classification", plot_dir=tmp_path, probes=["knn"]
    )
    assert set(results) == {"knn"} and results["knn"]["roc_auc"] > 0.95
    assert (tmp_path / "knn_confusion.png").exists()
    with pytest.raises(ValueError, match="unknown probe"):
        run_probes(X_train, y_train, X_test, y_test, task="classification", probes=["svm"])


def test_mlp_probe_fits_a_class_with_a_single_training_example():
    from contrast.evaluation.probes.mlp import fit_mlp_probe

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    y = np.array([0] * 29 + [1])  # class 1 once: no stratified early-stopping part can hold it
    result = fit_mlp_probe(X, y, X[:5], task="classification")
    assert result.proba.shape == (5, 2)
