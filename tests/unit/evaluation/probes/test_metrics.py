"""Probe metrics against scikit-learn's reference implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import log_loss, mean_absolute_error, mean_squared_error, r2_score, roc_auc_score

from contrast.evaluation.probes import classification_metrics, regression_metrics


def test_regression_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y, pred = rng.normal(size=50), rng.normal(size=50)
    scores = regression_metrics(y, pred)
    assert scores["mae"] == pytest.approx(mean_absolute_error(y, pred), abs=1e-12)
    assert scores["rmse"] == pytest.approx(math.sqrt(mean_squared_error(y, pred)), abs=1e-12)
    assert scores["r2"] == pytest.approx(r2_score(y, pred), abs=1e-12)
    assert regression_metrics(y, y) == {"mae": 0.0, "rmse": 0.0, "r2": 1.0}
    assert math.isnan(regression_metrics(np.ones(3), np.zeros(3))["r2"])
    with pytest.raises(ValueError, match="3 targets but 2"):
        regression_metrics(np.ones(3), np.ones(2))


def test_multiclass_roc_auc_matches_sklearn_macro_ovr():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, size=60)
    proba = rng.dirichlet(np.ones(3), size=60) + 0.5 * np.eye(3)[y]
    proba /= proba.sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    scores = classification_metrics(y, pred, proba)
    assert scores["accuracy"] == pytest.approx((pred == y).mean())
    expected = roc_auc_score(y, proba, multi_class="ovr", average="macro")
    assert scores["roc_auc"] == pytest.approx(expected, abs=1e-12)
    assert scores["log_loss"] == pytest.approx(log_loss(y, proba), abs=1e-12)


def test_binary_roc_auc_and_string_labels():
    y = np.array(["metal", "insulator", "metal", "insulator", "metal"])
    proba = np.array([[0.2, 0.8], [0.7, 0.3], [0.4, 0.6], [0.9, 0.1], [0.6, 0.4]])
    classes = np.array(["insulator", "metal"])
    scores = classification_metrics(y, classes[proba.argmax(axis=1)], proba, classes)
    assert scores["roc_auc"] == pytest.approx(roc_auc_score(y == "metal", proba[:, 1]))
    assert scores["accuracy"] == pytest.approx(0.8)


def test_single_class_and_missing_proba_are_graceful():
    y = np.zeros(4, dtype=int)
    proba = np.tile([0.7, 0.3], (4, 1))
    scores = classification_metrics(y, y, proba, classes=np.array([0, 1]))
    assert scores["accuracy"] == 1.0 and math.isnan(scores["roc_auc"])
    assert math.isnan(classification_metrics(y, y)["roc_auc"])
    assert math.isnan(classification_metrics(y, y)["log_loss"])
    with pytest.raises(ValueError, match="pass classes or labels"):
        classification_metrics(y, y, proba)


def test_multiclass_with_a_class_absent_from_the_test_set():
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.4, 0.3]])
    scores = classification_metrics(y, proba.argmax(axis=1), proba, classes=np.array([0, 1, 2]))
    assert scores["roc_auc"] == pytest.approx(1.0)


def test_a_test_split_lacking_a_class_with_the_full_label_list():
    # An MLP's softmax has a column per class of the task; this test split has no class 2.
    y = np.array([0, 1, 0, 1, 1, 0])
    logits = np.array(
        [[2.0, 0.1, 0.3], [0.2, 1.5, 0.1], [1.0, 0.9, 0.2], [0.1, 0.3, 2.0], [0.0, 2.5, 0.1], [1, 0, 0]]
    )
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    scores = classification_metrics(y, proba.argmax(axis=1), proba, labels=range(3))
    assert all(math.isfinite(value) for value in scores.values())
    assert scores["accuracy"] == pytest.approx(5 / 6)
    # Macro over the classes present (0 and 1), each one-vs-rest over all columns.
    expected = np.mean([roc_auc_score(y == k, proba[:, k]) for k in (0, 1)])
    assert scores["roc_auc"] == pytest.approx(expected, abs=1e-12)
    assert scores["log_loss"] == pytest.approx(log_loss(y, proba, labels=[0, 1, 2]), abs=1e-12)
    assert classification_metrics(y, proba.argmax(axis=1), proba, classes=np.arange(3)) == scores
    with pytest.raises(ValueError, match=r"y holds label\(s\) \[3\] outside labels"):
        classification_metrics(np.array([0, 3]), np.array([0, 0]), proba[:2], labels=range(3))
    with pytest.raises(ValueError, match="proba has 3 columns but 2 classes"):
        classification_metrics(y, y, proba, labels=[0, 1])


def test_log_loss_needs_probabilities():
    y = np.array([0, 1, 1])
    scores = np.array([[2.0, -1.0], [-0.5, 0.5], [0.0, 3.0]])  # decision scores, not probabilities
    result = classification_metrics(y, scores.argmax(axis=1), scores, classes=np.array([0, 1]))
    assert math.isnan(result["log_loss"]) and result["roc_auc"] == pytest.approx(1.0)
