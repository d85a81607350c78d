"""Probe metrics: MAE/RMSE/R^2 for regression, accuracy/ROC-AUC/log-loss for classification."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sklearn.metrics import roc_auc_score

__all__ = ["classification_metrics", "regression_metrics"]


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Mean absolute error, root-mean-square error and coefficient of determination.

    Args:
        y: true values [n].
        pred: predictions [n].

    Returns:
        ``{"mae", "rmse", "r2"}`` as floats; ``r2`` is NaN when ``y`` is constant (it is undefined there).
    """
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    if y.shape != pred.shape or len(y) == 0:
        raise ValueError(f"{len(y)} targets but {len(pred)} predictions (need the same, non-zero number)")
    error = pred - y
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((error**2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    return {"mae": float(np.abs(error).mean()), "rmse": float(np.sqrt((error**2).mean())), "r2": r2}


def classification_metrics(
    y: np.ndarray,
    pred: np.ndarray,
    proba: np.ndarray | None = None,
    classes: np.ndarray | None = None,
    labels: Iterable | None = None,
) -> dict[str, float]:
    """Accuracy, ROC-AUC (binary, or macro one-vs-rest over the classes present) and log-loss.

    A test split may lack some of the task's classes; pass ``labels`` (the full class list, e.g.
    ``range(num_classes)``) or ``classes`` so that the columns of ``proba`` are known.

    Args:
        y: true labels [n].
        pred: predicted labels [n].
        proba: class probabilities or scores [n, C]; without them ``roc_auc`` and ``log_loss`` are NaN.
        classes: the label of each column of ``proba`` [C]. Defaults to ``labels``, and without those to the
            sorted labels of ``y`` when their number matches the columns.
        labels: the task's full class list; ``y`` must hold only these (and ``classes`` only these).

    Returns:
        ``{"accuracy", "roc_auc", "log_loss"}``. ROC-AUC is the mean one-vs-rest AUC over the classes that
        occur in ``y`` (a class absent from ``y`` has no positives and is skipped), which equals
        scikit-learn's macro OvR AUC when every class occurs; it is NaN when ``y`` holds a single class.
        Log-loss is the mean of ``-log p(true class)`` (clipped at 1e-15) over all columns, so probability
        given to an absent class still counts against the model; NaN when ``proba`` rows are not
        probabilities or a true label has no column.

    Raises:
        ValueError: mismatched lengths or shapes, or a label of ``y`` outside ``labels``.
    """
    y = np.asarray(y).reshape(-1)
    pred = np.asarray(pred).reshape(-1)
    if y.shape != pred.shape or len(y) == 0:
        raise ValueError(f"{len(y)} labels but {len(pred)} predictions (need the same, non-zero number)")
    out = {"accuracy": float((y == pred).mean()), "roc_auc": float("nan"), "log_loss": float("nan")}
    if labels is not None:
        labels = np.asarray(list(labels))
        _check_subset(y, labels, "y")
        if classes is not None:
            _check_subset(np.asarray(classes), labels, "classes")
    if proba is None:
        return out
    proba = np.asarray(proba, dtype=np.float64)
    proba = proba[:, None] if proba.ndim == 1 else proba
    if classes is None:
        classes = labels if labels is not None else np.unique(y)
        if len(classes) != proba.shape[1]:
            raise ValueError(
                f"proba has {proba.shape[1]} columns but {len(classes)} classes are known; pass classes or "
                "labels (the full class list)"
            )
    classes = np.asarray(classes)
    if proba.shape != (len(y), len(classes)):
        raise ValueError(f"proba has shape {proba.shape}, expected ({len(y)}, {len(classes)})")
    out["log_loss"] = _log_loss(y, proba, classes)
    present = [k for k, label in enumerate(classes) if 0 < (y == label).sum() < len(y)]
    if not present:
        return out
    if len(classes) == 2:
        # One score column suffices; which class is "positive" does not change the binary AUC.
        out["roc_auc"] = float(roc_auc_score(y == classes[1], proba[:, 1]))
        return out
    out["roc_auc"] = float(np.mean([roc_auc_score(y == classes[k], proba[:, k]) for k in present]))
    return out


def _check_subset(values: np.ndarray, labels: np.ndarray, name: str) -> None:
    unknown = np.setdiff1d(np.unique(values), labels)
    if unknown.size:
        raise ValueError(f"{name} holds label(s) {unknown.tolist()} outside labels {labels.tolist()}")


def _log_loss(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Mean ``-log p(true class)``, or NaN where that is undefined (scores, or a label without a column)."""
    if (proba < 0).any() or not np.allclose(proba.sum(axis=1), 1.0, atol=1e-6):
        return float("nan")
    column = {label: k for k, label in enumerate(classes.tolist())}
    index = [column.get(label) for label in y.tolist()]
    if any(k is None for k in index):
        return float("nan")
    true = proba[np.arange(len(y)), index]
    return float(-np.log(np.clip(true, 1e-15, 1.0)).mean())
