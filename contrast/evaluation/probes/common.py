"""What the probes share: the result type and input checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "TASKS",
    "ROUND_OFF_RTOL",
    "ProbeResult",
    "Standardise",
    "check_features",
    "check_task",
    "check_targets",
]

TASKS = ("regression", "classification")

# A feature whose spread over the training rows is below this fraction of its largest magnitude holds float32
# round-off, not information: float32 keeps about 7 digits and a sum over a hundred atoms loses about two.
ROUND_OFF_RTOL = 1e-5


@dataclass
class ProbeResult:
    """Predictions of a fitted probe on the test embeddings.

    Attributes:
        pred: predicted values or class labels [n_test].
        proba: class probabilities [n_test, n_classes] (classification only), columns ordered as ``classes``.
        classes: the class labels seen in training [n_classes] (classification only).
        params: the hyper-parameters chosen by cross-validation (e.g. ``{"alpha": 0.1}``, ``{"k": 5}``).
        model: the fitted scikit-learn estimator.
    """

    pred: np.ndarray
    proba: np.ndarray | None = None
    classes: np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)
    model: Any = None


def check_task(task: str) -> str:
    """Return ``task`` if it is ``"regression"`` or ``"classification"``, else raise ``ValueError``."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    return task


def check_features(X: Any, name: str, width: int | None = None) -> np.ndarray:
    """Embeddings as a finite float64 array [n, D].

    Raises:
        ValueError: naming ``name`` and the reason (not 2-D, empty, wrong width, NaN/inf at a given row).
    """
    X = np.asarray(X.detach().cpu() if hasattr(X, "detach") else X, dtype=np.float64)
    if X.ndim != 2 or len(X) == 0:
        raise ValueError(f"{name}: expected a non-empty [n, D] array, got shape {X.shape}")
    if width is not None and X.shape[1] != width:
        raise ValueError(f"{name}: width {X.shape[1]} differs from the training embeddings' {width}")
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        raise ValueError(f"{name}: NaN or infinite values in row {int(np.flatnonzero(bad)[0])}")
    return X


def check_targets(y: Any, n: int, name: str, task: str) -> np.ndarray:
    """Targets as a 1-D array [n] (float64 for regression, labels kept for classification)."""
    y = np.asarray(y.detach().cpu() if hasattr(y, "detach") else y)
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"{name}: expected {n} targets as a 1-D array, got shape {y.shape}")
    if task == "regression":
        y = y.astype(np.float64)
        bad = ~np.isfinite(y)
        if bad.any():
            raise ValueError(f"{name}: NaN or infinite target at row {int(np.flatnonzero(bad)[0])}")
    return y


class Standardise(TransformerMixin, BaseEstimator):
    """Zero mean and unit variance per feature, with features constant up to round-off set to zero.

    Embeddings are computed in float32. A feature that is constant on the training rows except for round-off
    (the standard deviation of identical atoms, ``sqrt(var + 1e-8)``, in an elemental crystal) has a spread of
    ~1e-12 there; plain standardisation divides by it and turns a 1e-8 round-off difference in a test row into
    a value of thousands, which a weakly regularised probe extrapolates (one mlearn Si structure: ridge error
    3.9 eV/atom). Features whose training spread is at most ``rtol`` times their largest training magnitude
    are mapped to zero here instead, as are exactly constant ones (as scikit-learn's ``StandardScaler`` does).

    Args:
        rtol: relative spread at or below which a feature counts as constant.
    """

    def __init__(self, rtol: float = ROUND_OFF_RTOL):
        self.rtol = rtol

    def fit(self, X: np.ndarray, y: Any = None) -> Standardise:
        X = np.asarray(X, dtype=np.float64)
        self.mean_ = X.mean(axis=0)
        spread = X.std(axis=0)
        self.kept_ = spread > self.rtol * np.abs(X).max(axis=0)
        self.scale_ = np.where(self.kept_, spread, 1.0)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardised features [n, D]; the constant ones are zero."""
        check_is_fitted(self, "kept_")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected [n, {self.n_features_in_}] features, got shape {X.shape}")
        return np.where(self.kept_, (X - self.mean_) / self.scale_, 0.0)
