"""Probe metrics: MAE/RMSE/R^2 for regression, accuracy/ROC-AUC for classification."""

from __future__ import annotations

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
) -> dict[str, float]:
    """Accuracy and ROC-AUC (binary, or macro one-vs-rest for several classes).

    Args:
        y: true labels [n].
        pred: predicted labels [n].
        proba: class probabilities or scores [n, n_classes]; without them ``roc_auc`` is NaN.
        classes: the label of each column of ``proba``; defaults to the sorted labels of ``y`` when their
            number matches the columns.

    Returns:
        ``{"accuracy", "roc_auc"}``. ROC-AUC averages over the classes that occur in ``y`` (each needs
        positives and negatives) and is NaN when ``y`` holds a single class.
    """
    y = np.asarray(y).reshape(-1)
    pred = np.asarray(pred).reshape(-1)
    if y.shape != pred.shape or len(y) == 0:
        raise ValueError(f"{len(y)} labels but {len(pred)} predictions (need the same, non-zero number)")
    out = {"accuracy": float((y == pred).mean()), "roc_auc": float("nan")}
    if proba is None:
        return out
    proba = np.asarray(proba, dtype=np.float64)
    proba = proba[:, None] if proba.ndim == 1 else proba
    if classes is None:
        classes = np.unique(y)
        if len(classes) != proba.shape[1]:
            raise ValueError(
                f"proba has {proba.shape[1]} columns but y has {len(classes)} classes; pass classes"
            )
    classes = np.asarray(classes)
    if proba.shape != (len(y), len(classes)):
        raise ValueError(f"proba has shape {proba.shape}, expected ({len(y)}, {len(classes)})")
    present = [k for k, label in enumerate(classes) if 0 < (y == label).sum() < len(y)]
    if not present:
        return out
    if len(classes) == 2:
        # One score column suffices; which class is "positive" does not change the binary AUC.
        out["roc_auc"] = float(roc_auc_score(y == classes[1], proba[:, 1]))
        return out
    out["roc_auc"] = float(np.mean([roc_auc_score(y == classes[k], proba[:, k]) for k in present]))
    return out
