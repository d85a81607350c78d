"""Embedding maps: a 2-D projection of embeddings as a standalone HTML page (no server, opens from disk).

Points are coloured by a label (a continuous colour scale) or by element (each structure's most abundant
element, one colour each); hovering a point shows its id, formula and label; a search box highlights every
structure of a formula. The projection is UMAP where ``umap-learn`` is installed, else PCA.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["project", "write_map", "majority_element"]

_ELEMENT = re.compile(r"([A-Z][a-z]?)(\d*\.?\d*)")


def project(embeddings: np.ndarray, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D coordinates [S, 2] of embeddings [S, D] and the method used (``umap`` or ``pca``).

    ``auto`` is UMAP where ``umap-learn`` is installed and there are enough points, else PCA of the
    standardised embeddings (columns constant up to round-off are dropped).
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if method not in ("auto", "umap", "pca"):
        raise ValueError(f"projection must be auto, umap or pca, got {method!r}")
    if method in ("auto", "umap") and len(x) > 15:
        try:
            import umap

            reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, len(x) - 1))
            return np.asarray(reducer.fit_transform(x)), "umap"
        except ImportError:
            if method == "umap":
                raise ImportError("projection=umap needs umap-learn: pip install -e '.[viz]'") from None
    std = x.std(0)
    keep = std > 1e-9 * max(1.0, float(np.abs(x).max(initial=0.0)))
    z = (x[:, keep] - x[:, keep].mean(0)) / std[keep] if keep.any() else np.zeros((len(x), 1))
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    coords = u[:, :2] * s[:2]
    if coords.shape[1] < 2:
        coords = np.hstack([coords, np.zeros((len(x), 2 - coords.shape[1]))])
    return coords, "pca"


def majority_element(formula: str) -> str:
    """The most abundant element of a reduced formula (alphabetical on a tie): ``Fe2O3`` -> ``O``."""
    counts = Counter()
    for symbol, amount in _ELEMENT.findall(formula):
        counts[symbol] += float(amount) if amount else 1.0
    if not counts:
        return "?"
    best = max(counts.values())
    return sorted(symbol for symbol, amount in counts.items() if amount == best)[0]


def write_map(
    rows: dict[str, Any],
    out: str | Path,
    color: str | None = None,
    projection: str = "auto",
    title: str = "contrast embedding map",
) -> dict[str, Any]:
    """Write the map of ``rows`` (what :func:`contrast.read_embeddings` or :func:`contrast.embed_file`
    returns: ``ids``, ``formulas``, ``embeddings`` [S, D], ``labels``) to ``out`` as one HTML file.

    Args:
        color: a label of ``rows["labels"]`` (one number per structure), ``element`` (the majority element),
            or None (one colour).
        projection: ``auto``, ``umap`` or ``pca``.

    Returns:
        ``{"path", "points", "projection", "color"}``.

    Raises:
        ValueError: an unknown label (the available ones are named), or no rows.
    """
    ids, formulas = [str(i) for i in rows["ids"]], [str(f) for f in rows["formulas"]]
    if not ids:
        raise ValueError("no structures to map")
    labels = rows.get("labels") or {}
    values: list[Any]
    if color is None:
        values, kind = [None] * len(ids), "none"
    elif color == "element":
        values, kind = [majority_element(f) for f in formulas], "category"
    elif color in labels:
        array = np.asarray(labels[color], dtype=np.float64).reshape(len(ids), -1)[:, 0]
        values, kind = [None if not np.isfinite(v) else float(v) for v in array], "number"
    else:
        known = f"labels: {sorted(labels)}, or 'element'"
        raise ValueError(f"color={color!r}: not a label of these rows ({known})")
    coords, method = project(np.asarray(rows["embeddings"]), projection)
    points = [
        {"id": i, "formula": f, "value": v, "x": float(x), "y": float(y)}
        for i, f, v, (x, y) in zip(ids, formulas, values, coords)
    ]
    template = (Path(__file__).parent / "map.html").read_text(encoding="utf-8")
    page = template.replace("__TITLE__", html.escape(title)).replace(
        "__DATA__",
        json.dumps({"points": points, "kind": kind, "label": color or "", "projection": method}).replace(
            "</", "<\\/"
        ),
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return {"path": str(out), "points": len(points), "projection": method, "color": kind}
