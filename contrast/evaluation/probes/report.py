"""The probe report: every probe on every feature set, on one held-out split.

Feature sets: the encoder's frozen embeddings, a freshly initialised encoder of the same architecture,
element fractions and element-property statistics. Probes: ridge (or logistic), kNN and a small MLP, each
fitted on the training part only and scored on the test part. A number without its baselines is not a result.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

__all__ = ["REPORT_PROBES", "composition_report", "graph_labels", "probe_report", "feature_sets"]

REPORT_PROBES = ("linear", "knn", "mlp")
COMPOSITION = ("fractions", "statistics")


def graph_labels(graphs: Sequence, targets: Sequence[str]) -> np.ndarray:
    """Graph-level labels [n, T] (float64) of graphs that carry the ``targets`` fields."""
    return np.array(
        [[float(getattr(graph, name).reshape(-1)[0]) for name in targets] for graph in graphs],
        dtype=np.float64,
    ).reshape(len(graphs), len(targets))


def feature_sets(encoder: nn.Module, train: Sequence, test: Sequence, seed: int = 0) -> dict[str, tuple]:
    """``{name: (X_train, X_test)}`` for the encoder's embeddings and the three baselines."""
    from contrast.evaluation.probes.baselines import composition_features, random_encoder_like
    from contrast.pretrained.loading import embed

    fresh = random_encoder_like(encoder, seed=seed)

    def embeddings(model: nn.Module, graphs: Sequence) -> np.ndarray:
        return embed(model, list(graphs), batch_size=64).double().numpy()

    return {
        "pretrained": (embeddings(encoder, train), embeddings(encoder, test)),
        "random_encoder": (embeddings(fresh, train), embeddings(fresh, test)),
        **{
            name: (composition_features(train, name), composition_features(test, name))
            for name in COMPOSITION
        },
    }


def probe_report(
    encoder: nn.Module,
    train: Sequence,
    test: Sequence,
    targets: Sequence[str],
    kind: str = "regression",
    seed: int = 0,
    output_dir: str | Path | None = None,
    test_name: str = "test",
) -> dict[str, Any]:
    """Fit every probe on every feature set of the ``train`` graphs and score it on the ``test`` graphs.

    Args:
        encoder: the frozen encoder (left unchanged).
        train: training graphs carrying the target fields.
        test: held-out graphs; the report calls them ``test_name``.
        targets: graph-level property names.
        kind: ``"regression"`` or ``"classification"``.
        seed: seeds the fresh encoder and the probes.
        output_dir: when given, parity plots (or confusion matrices) of the encoder's probes per target.
        test_name: what the scored split is (``"test"``, or ``"val"`` when a caller scores validation).

    Returns:
        ``{"probe_split": {"train": n, test_name: m}, target: {feature_set: {probe: metrics}, "ratios"}}``,
        where ``ratios`` holds each probe's MAE (regression) of the embeddings over the fresh encoder's and
        over the better composition baseline's.

    Raises:
        ValueError: an empty training or test part.
    """
    if not len(train) or not len(test):
        raise ValueError(
            f"the probe report needs graphs in both parts, got train {len(train)}, {test_name} {len(test)}"
        )
    features = feature_sets(encoder, train, test, seed)
    report = _score(features, train, test, targets, kind, seed, output_dir, test_name)
    if kind == "regression":
        for name in targets:
            report[name]["ratios"] = mae_ratios(report[name])
    return report


def _score(
    features: dict[str, tuple],
    train: Sequence,
    test: Sequence,
    targets: Sequence[str],
    kind: str,
    seed: int,
    output_dir: str | Path | None = None,
    test_name: str = "test",
) -> dict[str, Any]:
    """Every probe on every feature set ``{name: (X_train, X_test)}`` per target (plots of ``pretrained``)."""
    from contrast.evaluation.probes.baselines import KNN_NORMALISE
    from contrast.evaluation.probes.run import run_probes

    y_train, y_test = graph_labels(train, targets), graph_labels(test, targets)
    report: dict[str, Any] = {"probe_split": {"train": len(train), test_name: len(test)}}
    for t, name in enumerate(targets):
        per_target: dict[str, Any] = {}
        for feature_name, (x_train, x_test) in features.items():
            plotted = output_dir is not None and feature_name == "pretrained"
            per_target[feature_name] = run_probes(
                x_train,
                y_train[:, t],
                x_test,
                y_test[:, t],
                kind,
                seed,
                probes=REPORT_PROBES,
                plot_dir=Path(output_dir) / f"plots_{name}" if plotted else None,
                knn_normalise=KNN_NORMALISE.get(feature_name, "standard"),  # l2 rows for sparse fractions
            )
        report[name] = per_target
    return report


def composition_report(
    train: Sequence, test: Sequence, targets: Sequence[str], kind: str = "regression", seed: int = 0
) -> dict[str, Any]:
    """The composition baselines of :func:`probe_report` alone: every probe on element fractions and on
    element-property statistics, fitted on ``train`` and scored on ``test``.

    For a model trained on the labels itself (``task=finetune``), where probes on its own embeddings say
    little. The numbers equal the ``fractions`` and ``statistics`` entries of :func:`probe_report` on the same
    split and seed.

    Returns:
        ``{"probe_split": {"train": n, "test": m}, target: {feature_set: {probe: metrics}}}`` for the feature
        sets ``fractions`` and ``statistics``, each probe's metrics as in
        :func:`contrast.evaluation.probes.run_probes`.

    Raises:
        ValueError: an empty training or test part.
    """
    from contrast.evaluation.probes.baselines import composition_features

    if not len(train) or not len(test):
        raise ValueError(
            f"the composition baselines need graphs in both parts, got {len(train)}, {len(test)}"
        )
    features = {
        name: (composition_features(train, name), composition_features(test, name)) for name in COMPOSITION
    }
    return _score(features, train, test, targets, kind, seed)


def mae_ratios(per_target: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per probe: the embeddings' MAE over the fresh encoder's and over the better composition baseline's."""
    ratios = {}
    for probe in REPORT_PROBES:
        mae = per_target["pretrained"][probe]["mae"]
        composition = min(per_target["fractions"][probe]["mae"], per_target["statistics"][probe]["mae"])
        ratios[probe] = {
            "vs_random_encoder": _ratio(mae, per_target["random_encoder"][probe]["mae"]),
            "vs_composition": _ratio(mae, composition),
        }
    return ratios


def _ratio(value: float, baseline: float) -> float:
    return float(value / baseline) if baseline > 0 else float("inf")
