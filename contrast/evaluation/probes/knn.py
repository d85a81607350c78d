"""k-nearest-neighbour probes on frozen embeddings, with k chosen by cross-validation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer

from contrast.evaluation.probes.common import (
    ProbeResult,
    Standardise,
    check_features,
    check_targets,
    check_task,
)
from contrast.evaluation.probes.linear import MAX_FOLDS, classification_folds

__all__ = ["KNN_KS", "fit_knn_probe"]

KNN_KS = (1, 3, 5, 10, 20, 50)
NORMALISERS = ("standard", "l2")


def fit_knn_probe(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    task: str = "regression",
    seed: int = 0,
    ks: Sequence[int] = KNN_KS,
    normalise: str = "standard",
) -> ProbeResult:
    """Fit a kNN probe (distance-weighted vote or mean) and predict the test set.

    Args:
        X_train: training embeddings [n, D].
        y_train: training targets [n].
        X_test: test embeddings [m, D].
        task: ``"regression"`` or ``"classification"``.
        seed: seeds the fold shuffling.
        ks: candidate numbers of neighbours; those larger than a training fold are dropped.
        normalise: ``"standard"`` (zero mean, unit variance per dimension) or ``"l2"`` (unit-norm rows, so
            Euclidean distance ranks like cosine similarity, the geometry InfoNCE trains; also the fair choice
            for sparse element fractions, whose rare-element columns standardising would blow up).

    Returns:
        :class:`ProbeResult`; ``params["k"]`` is the chosen number of neighbours.

    Raises:
        ValueError: bad shapes, NaN values, an unknown task or normaliser.
    """
    check_task(task)
    if normalise not in NORMALISERS:
        raise ValueError(f"normalise must be one of {NORMALISERS}, got {normalise!r}")
    X_train = check_features(X_train, "X_train")
    X_test = check_features(X_test, "X_test", width=X_train.shape[1])
    y_train = check_targets(y_train, len(X_train), "y_train", task)
    n = len(X_train)
    if task == "classification":
        cv = classification_folds(y_train, seed)
        estimator, scoring = KNeighborsClassifier(weights="distance"), "accuracy"
    else:
        cv = KFold(min(MAX_FOLDS, n), shuffle=True, random_state=seed) if n >= 2 else None
        estimator, scoring = KNeighborsRegressor(weights="distance"), "neg_mean_absolute_error"
    scaler = Standardise() if normalise == "standard" else Normalizer()
    pipeline = make_pipeline(scaler, estimator)
    smallest_fold = n - int(np.ceil(n / cv.get_n_splits())) if cv is not None else n
    candidates = sorted({k for k in ks if 1 <= k <= smallest_fold}) or [1]
    if cv is None or len(candidates) == 1:
        model = pipeline.set_params(**{f"{pipeline.steps[-1][0]}__n_neighbors": min(candidates[0], n)})
        model.fit(X_train, y_train)
        k = model[-1].n_neighbors
    else:
        name = f"{pipeline.steps[-1][0]}__n_neighbors"
        search = GridSearchCV(pipeline, {name: candidates}, cv=cv, scoring=scoring).fit(X_train, y_train)
        model, k = search.best_estimator_, search.best_params_[name]
    result = ProbeResult(pred=model.predict(X_test), params={"k": int(k)}, model=model)
    if task == "classification":
        result.proba, result.classes = model.predict_proba(X_test), model.classes_
    return result
