"""Probe figures: parity plot for regression, confusion matrix for classification.

Figures are drawn on an Agg canvas directly, without pyplot, so plotting never changes the backend or the
current figure of a notebook session.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix

from contrast.evaluation.probes.metrics import regression_metrics

__all__ = ["confusion_matrix_plot", "parity_plot"]


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=150, format="png")
    return path


def parity_plot(
    y: np.ndarray, pred: np.ndarray, path: str | Path, title: str | None = None, unit: str = ""
) -> Path:
    """Predicted against true values with the y = x line and MAE/R^2 in the legend; written as PNG.

    Args:
        y: true values [n].
        pred: predictions [n].
        path: output ``.png`` file (parent folders are created).
        title: figure title.
        unit: appended to the axis labels and the MAE, e.g. ``"eV"``.

    Returns:
        The written path.
    """
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    scores = regression_metrics(y, pred)
    figure = Figure(figsize=(4.5, 4.5), layout="constrained")
    axes = figure.add_subplot()
    low, high = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    pad = 0.05 * (high - low or 1.0)
    axes.plot([low - pad, high + pad], [low - pad, high + pad], color="0.5", lw=1, ls="--", zorder=0)
    suffix = f" ({unit})" if unit else ""
    label = f"MAE {scores['mae']:.3g}{' ' + unit if unit else ''}, $R^2$ {scores['r2']:.3f}"
    axes.scatter(y, pred, s=8, alpha=0.6, edgecolors="none", label=label)
    axes.set(xlim=(low - pad, high + pad), ylim=(low - pad, high + pad), aspect="equal")
    axes.set(xlabel=f"true{suffix}", ylabel=f"predicted{suffix}", title=title)
    axes.legend(loc="upper left", frameon=False)
    return _save(figure, path)


def confusion_matrix_plot(
    y: np.ndarray,
    pred: np.ndarray,
    path: str | Path,
    labels: Sequence | None = None,
    title: str | None = None,
) -> Path:
    """Row-normalised confusion matrix (each true class sums to one) with counts annotated; written as PNG.

    Args:
        y: true labels [n].
        pred: predicted labels [n].
        path: output ``.png`` file.
        labels: class order on both axes; defaults to the sorted union of ``y`` and ``pred``.
        title: figure title.

    Returns:
        The written path.
    """
    y, pred = np.asarray(y).reshape(-1), np.asarray(pred).reshape(-1)
    labels = np.unique(np.concatenate([y, pred])) if labels is None else np.asarray(labels)
    counts = confusion_matrix(y, pred, labels=labels)  # [C, C], rows true
    totals = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    size = 2.5 + 0.45 * len(labels)
    figure = Figure(figsize=(size + 1, size), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, label="fraction of true class")
    ticks = np.arange(len(labels))
    axes.set_xticks(ticks, [str(label) for label in labels], rotation=45, ha="right")
    axes.set_yticks(ticks, [str(label) for label in labels])
    for row, col in np.ndindex(counts.shape):
        colour = "white" if fractions[row, col] > 0.5 else "black"
        axes.text(col, row, str(counts[row, col]), ha="center", va="center", color=colour, fontsize=8)
    accuracy = float((y == pred).mean()) if len(y) else float("nan")
    axes.set(xlabel="predicted", ylabel="true", title=title or f"accuracy {accuracy:.3f}")
    return _save(figure, path)
