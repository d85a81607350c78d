"""Property probes on frozen embeddings, their baselines and metrics, figures and the leakage guard.

Example::

    from contrast.evaluation.probes import run_probes
    results = run_probes(X_train, y_train, X_test, y_test, task="regression", seed=0)
    results["linear"]["mae"], results["knn"]["k"]
"""

from __future__ import annotations

from contrast.data.leakage import StructureFingerprint, remove_leakage, structure_fingerprint
from contrast.evaluation.probes.baselines import (
    COMPOSITION_FEATURES,
    ELEMENT_STATISTICS_NAMES,
    KNN_NORMALISE,
    atomic_numbers,
    composition_baseline,
    composition_features,
    element_statistics,
    random_encoder_like,
)
from contrast.evaluation.probes.common import ProbeResult
from contrast.evaluation.probes.knn import fit_knn_probe
from contrast.evaluation.probes.linear import fit_linear_probe
from contrast.evaluation.probes.metrics import classification_metrics, regression_metrics
from contrast.evaluation.probes.plots import confusion_matrix_plot, parity_plot
from contrast.evaluation.probes.run import probe_metrics, run_probes

__all__ = [
    "COMPOSITION_FEATURES",
    "ELEMENT_STATISTICS_NAMES",
    "KNN_NORMALISE",
    "ProbeResult",
    "StructureFingerprint",
    "atomic_numbers",
    "classification_metrics",
    "composition_baseline",
    "composition_features",
    "confusion_matrix_plot",
    "element_statistics",
    "fit_knn_probe",
    "fit_linear_probe",
    "parity_plot",
    "probe_metrics",
    "random_encoder_like",
    "regression_metrics",
    "remove_leakage",
    "run_probes",
    "structure_fingerprint",
]
