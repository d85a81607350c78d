"""Similarity search: the crystals of a database nearest to each query, by cosine similarity of embeddings.

    indices, similarities = contrast.neighbours(encoder, query_structures, database, k=5)

Queries and database are structures (embedded here with the encoder) or precomputed embeddings (a tensor, an
array, or what :func:`contrast.read_embeddings` returns). Imports neither Lightning nor Hydra.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["neighbours"]

# query rows per block: a block's similarity matrix [rows, S] stays about 128 MB in float64
_BLOCK_ELEMENTS = 2**24


@torch.no_grad()
def neighbours(
    encoder: torch.nn.Module | None,
    query: Any,
    database: Any,
    k: int = 5,
    batch_size: int = 64,
) -> tuple[Tensor, Tensor]:
    """The ``k`` crystals of ``database`` most similar to each query, by cosine similarity of embeddings.

    Args:
        encoder: embeds ``query`` / ``database`` when they are structures (see :func:`contrast.embed`); may be
            None when both are embeddings.
        query: Q structures (pymatgen, ASE, a ``contrast`` dataset), one structure, or embeddings [Q, D] /
            [D].
        database: S structures or embeddings [S, D], as for ``query``.
        k: neighbours per query, 1 <= k <= S.
        batch_size: structures per forward pass when embedding.

    Returns:
        ``(indices, similarities)``, both [Q, k]: row q lists database rows by decreasing cosine similarity
        to query q (int64 indices, float64 similarities in [-1, 1]); equal similarities keep database order.
        A query that is also in the database finds itself first, at similarity 1.

    Raises:
        ValueError: ``k`` outside 1..S, embeddings of different widths, or a non-finite embedding (named).
    """
    queries = _embeddings(encoder, query, "query", batch_size)  # [Q, D]
    rows = _embeddings(encoder, database, "database", batch_size)  # [S, D]
    if queries.shape[1] != rows.shape[1]:
        raise ValueError(
            f"query embeddings have width {queries.shape[1]} but the database's have {rows.shape[1]}: "
            "embed both with the same encoder"
        )
    if not 1 <= int(k) <= len(rows):
        raise ValueError(f"k={k} but the database holds {len(rows)} crystals: need 1 <= k <= {len(rows)}")
    k = int(k)
    queries = torch.nn.functional.normalize(queries, dim=1)  # a zero embedding stays zero: similarity 0
    rows = torch.nn.functional.normalize(rows, dim=1)
    block = max(1, _BLOCK_ELEMENTS // max(1, len(rows)))
    indices, similarities = [], []
    for start in range(0, len(queries), block):
        scores = queries[start : start + block] @ rows.T  # [b, S]
        order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]  # [b, k]
        indices.append(order)
        similarities.append(torch.gather(scores, 1, order).clamp(-1.0, 1.0))
    if not indices:
        return torch.empty(0, k, dtype=torch.long), torch.empty(0, k, dtype=torch.float64)
    return torch.cat(indices), torch.cat(similarities)


def _embeddings(encoder, items: Any, role: str, batch_size: int) -> Tensor:
    """Embeddings [n, D] float64 of ``items``: given ones as they are, structures through the encoder."""
    if isinstance(items, Mapping) and "embeddings" in items:
        items = items["embeddings"]
    if isinstance(items, (Tensor, np.ndarray)):
        values = torch.as_tensor(np.asarray(items) if isinstance(items, np.ndarray) else items.detach())
        if values.dim() == 1:
            values = values.unsqueeze(0)
        if values.dim() != 2:
            raise ValueError(f"{role} embeddings must be [n, D] or [D], got shape {tuple(values.shape)}")
    else:
        if encoder is None:
            raise ValueError(f"the {role} holds structures: pass the encoder that embeds them")
        from contrast.pretrained.loading import embed

        values = embed(encoder, items, batch_size=batch_size)
    values = values.to(device="cpu", dtype=torch.float64)
    bad = (~torch.isfinite(values).all(dim=1)).nonzero().flatten()
    if len(bad):
        raise ValueError(f"{role} embedding {int(bad[0])} is NaN or infinite ({len(bad)} such rows)")
    return values
