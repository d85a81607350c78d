"""One call for the standard probe suite: linear and kNN probes with their metrics (and optional figures)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from contrast.evaluation.probes.common import ProbeResult, check_targets, check_task
from contrast.evaluation.probes.knn import NORMALISERS, fit_knn_probe
from contrast.evaluation.probes.linear import fit_linear_probe
from contrast.evaluation.probes.metrics import classification_metrics, regression_metrics
from contrast.evaluation.probes.mlp import fit_mlp_probe

__all__ = ["PROBES", "probe_metrics", "run_probes"]

PROBES = {"linear": fit_linear_probe, "knn": fit_knn_probe, "mlp": fit_mlp_probe}


def probe_metrics(result: ProbeResult, y_test: np.ndarray, task: str) -> dict[str, float]:
    """The task's metrics of one probe's test predictions, plus its chosen hyper-parameters."""
    if task == "regression":
        scores = regression_metrics(y_test, result.pred)
    else:
        scores = classification_metrics(y_test, result.pred, result.proba, result.classes)
    return {**scores, **{key: float(value) for key, value in result.params.items()}}


def run_probes(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    task: str = "regression",
    seed: int = 0,
    probes: Sequence[str] = ("linear", "knn"),
    plot_dir: str | Path | None = None,
    return_predictions: bool = False,
    knn_normalise: str = "standard",
) -> dict[str, Any]:
    """Fit each probe on the training embeddings and score it on the test embeddings.

    Args:
        X_train: training embeddings [n, D].
        y_train: training targets [n].
        X_test: test embeddings [m, D].
        y_test: test targets [m].
        task: ``"regression"`` or ``"classification"``.
        seed: seeds the cross-validation folds.
        probes: which of ``"linear"``, ``"knn"`` to run.
        plot_dir: when given, writes ``{probe}_parity.png`` or ``{probe}_confusion.png`` there.
        return_predictions: add the full :class:`ProbeResult` of each probe under ``"predictions"``.
        knn_normalise: the kNN probe's row treatment, ``"standard"`` for embeddings and dense features,
            ``"l2"`` for sparse element fractions (``contrast.evaluation.probes.KNN_NORMALISE`` has the one
            for each
            composition feature set). The linear probe always standardises.

    Returns:
        ``{"linear": {"mae", "rmse", "r2", "alpha"}, "knn": {..., "k"}}`` for regression, or accuracy,
        roc_auc and log_loss with ``C``/``k`` for classification; plain floats, ready for JSON or a logger.
    """
    check_task(task)
    unknown = [name for name in probes if name not in PROBES]
    if unknown:
        raise ValueError(f"unknown probe(s) {unknown}; choose from {sorted(PROBES)}")
    if knn_normalise not in NORMALISERS:
        raise ValueError(f"knn_normalise must be one of {NORMALISERS}, got {knn_normalise!r}")
    y_test = check_targets(y_test, len(np.asarray(X_test)), "y_test", task)
    out: dict[str, Any] = {}
    predictions = {}
    for name in probes:
        options = {"normalise": knn_normalise} if name == "knn" else {}
        result = PROBES[name](X_train, y_train, X_test, task=task, seed=seed, **options)
        out[name] = probe_metrics(result, y_test, task)
        predictions[name] = result
        if plot_dir is not None:
            _plot(name, result, y_test, task, Path(plot_dir))
    if return_predictions:
        out["predictions"] = predictions
    return out


def _plot(name: str, result: ProbeResult, y_test: np.ndarray, task: str, plot_dir: Path) -> None:
    from contrast.evaluation.probes.plots import confusion_matrix_plot, parity_plot

    if task == "regression":
        parity_plot(y_test, result.pred, plot_dir / f"{name}_parity.png", title=f"{name} probe")
    else:
        confusion_matrix_plot(y_test, result.pred, plot_dir / f"{name}_confusion.png", title=f"{name} probe")
