"""Linear probes on frozen embeddings: standardised ridge regression and logistic regression, both with
cross-validated regularisation."""

from __future__ import annotations

import inspect

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, RidgeCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline

from contrast.evaluation.probes.common import (
    ProbeResult,
    Standardise,
    check_features,
    check_targets,
    check_task,
)

__all__ = ["RIDGE_ALPHAS", "LOGISTIC_CS", "fit_linear_probe", "classification_folds"]

RIDGE_ALPHAS = np.logspace(-6, 6, 25)
LOGISTIC_CS = np.logspace(-4, 4, 17)
MAX_FOLDS = 5


def classification_folds(y: np.ndarray, seed: int, max_folds: int = MAX_FOLDS) -> StratifiedKFold | None:
    """Stratified shuffled folds, as many as the rarest class allows (``None`` if it has one sample)."""
    folds = min(max_folds, int(np.unique(y, return_counts=True)[1].min()))
    return StratifiedKFold(folds, shuffle=True, random_state=seed) if folds >= 2 else None


def _logistic_cv(cv: StratifiedKFold, seed: int) -> LogisticRegressionCV:
    kwargs = {"Cs": LOGISTIC_CS, "cv": cv, "scoring": "neg_log_loss", "max_iter": 5000, "random_state": seed}
    # Newer scikit-learn warns unless the L2-only penalty and the new attribute layout are explicit.
    if "use_legacy_attributes" in inspect.signature(LogisticRegressionCV).parameters:
        kwargs.update(l1_ratios=(0.0,), use_legacy_attributes=False)
    return LogisticRegressionCV(**kwargs)


def _fit_classifier(X_train: np.ndarray, y_train: np.ndarray, seed: int) -> tuple[Pipeline, dict]:
    if len(np.unique(y_train)) == 1:
        # Nothing to separate: predict the only class with certainty rather than fail.
        return make_pipeline(DummyClassifier(strategy="most_frequent")).fit(X_train, y_train), {}
    cv = classification_folds(y_train, seed)
    if cv is None:
        estimator = LogisticRegression(C=1.0, max_iter=5000, random_state=seed)
    else:
        estimator = _logistic_cv(cv, seed)
    model = make_pipeline(Standardise(), estimator).fit(X_train, y_train)
    chosen = getattr(model[-1], "C_", 1.0)
    return model, {"C": float(np.ravel(chosen)[0])}


def fit_linear_probe(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    task: str = "regression",
    seed: int = 0,
) -> ProbeResult:
    """Fit a linear probe on standardised embeddings and predict the test set.

    Regression uses ``RidgeCV`` over ``RIDGE_ALPHAS`` (efficient leave-one-out), classification
    ``LogisticRegressionCV`` over ``LOGISTIC_CS`` with stratified shuffled folds (log-loss scoring).

    Args:
        X_train: training embeddings [n, D].
        y_train: training targets [n] (floats, or class labels of any type).
        X_test: test embeddings [m, D].
        task: ``"regression"`` or ``"classification"``.
        seed: seeds the fold shuffling.

    Returns:
        :class:`ProbeResult` with ``pred`` [m], and for classification ``proba`` [m, C] and ``classes`` [C];
        ``params`` holds the chosen ``alpha`` or ``C``.

    Raises:
        ValueError: bad shapes, NaN values or an unknown task.
    """
    check_task(task)
    X_train = check_features(X_train, "X_train")
    X_test = check_features(X_test, "X_test", width=X_train.shape[1])
    y_train = check_targets(y_train, len(X_train), "y_train", task)
    if task == "regression":
        model = make_pipeline(Standardise(), RidgeCV(alphas=RIDGE_ALPHAS)).fit(X_train, y_train)
        return ProbeResult(pred=model.predict(X_test), params={"alpha": float(model[-1].alpha_)}, model=model)
    model, params = _fit_classifier(X_train, y_train, seed)
    return ProbeResult(
        pred=model.predict(X_test),
        proba=model.predict_proba(X_test),
        classes=model.classes_,
        params=params,
        model=model,
    )
