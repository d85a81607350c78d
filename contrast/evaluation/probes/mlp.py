"""A small MLP probe, the same for every feature set (embeddings, fresh encoder, composition)."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from contrast.evaluation.probes.common import (
    ProbeResult,
    Standardise,
    check_features,
    check_targets,
    check_task,
)

__all__ = ["MLP_HIDDEN", "fit_mlp_probe"]

MLP_HIDDEN = (64,)  # one hidden layer, as the LightningModule probe's default head
MIN_EARLY_STOPPING = 20  # training rows below which no validation part is held out for early stopping


def fit_mlp_probe(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    task: str = "regression",
    seed: int = 0,
) -> ProbeResult:
    """Fit a one-hidden-layer MLP on standardised features and predict the test set.

    Adam with early stopping on 10% of the training rows (chosen with ``seed``); regression targets are
    standardised for the fit and mapped back. Nothing is chosen on the test rows.

    Args:
        X_train: training features [n, D].
        y_train: training targets [n] (floats, or class labels).
        X_test: test features [m, D].
        task: ``"regression"`` or ``"classification"``.
        seed: seeds the weights and the early-stopping split.

    Returns:
        :class:`ProbeResult` with ``pred`` [m] and, for classification, ``proba`` [m, C] and ``classes`` [C];
        ``params`` holds the number of training epochs run.
    """
    check_task(task)
    X_train = check_features(X_train, "X_train")
    X_test = check_features(X_test, "X_test", width=X_train.shape[1])
    y_train = check_targets(y_train, len(X_train), "y_train", task)
    settings = {
        "hidden_layer_sizes": MLP_HIDDEN,
        "activation": "relu",
        "alpha": 1e-4,
        "learning_rate_init": 1e-3,
        "max_iter": 500,
        # the early-stopping part is stratified by class: every class needs two training rows
        "early_stopping": len(X_train) >= MIN_EARLY_STOPPING
        and (task == "regression" or np.unique(y_train, return_counts=True)[1].min() >= 2),
        "n_iter_no_change": 20,
        "random_state": seed,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if task == "regression":
            net = MLPRegressor(**settings)
            model = TransformedTargetRegressor(
                make_pipeline(Standardise(), net), transformer=StandardScaler()
            )
            model.fit(X_train, y_train)
            epochs = model.regressor_[-1].n_iter_
            return ProbeResult(pred=model.predict(X_test), params={"epochs": float(epochs)}, model=model)
        model = make_pipeline(Standardise(), MLPClassifier(**settings)).fit(X_train, y_train)
    return ProbeResult(
        pred=model.predict(X_test),
        proba=model.predict_proba(X_test),
        classes=model.classes_,
        params={"epochs": float(model[-1].n_iter_)},
        model=model,
    )
