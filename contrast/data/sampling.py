"""Drawing training structures from several sources with set probabilities (weights or a temperature).

With sizes ``n_i`` and temperature ``T`` source ``i`` is drawn with probability ``p_i ∝ n_i^(1/T)``: ``T = 1``
draws in proportion to size, larger ``T`` flattens the mix, ``T = inf`` draws every source equally often.
Without a temperature ``p_i = w_i / sum(w)`` for the sources' weights.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import DistributedSampler

__all__ = ["SourceSampler", "source_probabilities"]


def source_probabilities(
    sizes: Sequence[int],
    weights: Sequence[float] | None = None,
    temperature: float | None = None,
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """The probability of drawing each source, [K] float64 (sums to 1).

    Args:
        sizes: structures of each source available for training [K].
        weights: relative weights [K] (default all 1); ignored when ``temperature`` is given.
        temperature: ``p_i ∝ n_i^(1/T)``, ``T > 0`` (``inf``: uniform over the non-empty sources).
        names: the sources' names, for error messages.

    Raises:
        ValueError: a non-positive temperature, negative or non-finite weights, all weights zero, or a source
            without structures that would be drawn.
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    if temperature is not None:
        temperature = float(temperature)
        if not temperature > 0:
            raise ValueError(f"data.sampling_temperature must be > 0 (or null), got {temperature}")
        raw = np.where(sizes > 0, sizes ** (1.0 / temperature), 0.0)  # 0^0 would make an empty source 1
    else:
        raw = np.ones_like(sizes) if weights is None else np.asarray(weights, dtype=np.float64)
        if raw.shape != sizes.shape or not np.isfinite(raw).all() or (raw < 0).any():
            raise ValueError(f"source weights must be {len(sizes)} finite numbers >= 0, got {list(raw)}")
    if raw.sum() <= 0:
        raise ValueError("no source can be drawn: every weight is zero or every source is empty")
    empty = np.flatnonzero((raw > 0) & (sizes == 0))
    if len(empty):
        named = [names[k] for k in empty] if names is not None else empty.tolist()
        raise ValueError(f"sources {named} have no training structures but a weight above zero")
    return raw / raw.sum()


class SourceSampler(DistributedSampler):
    """Each epoch, draws training positions so that source ``k`` fills each slot with probability ``p_k``.

    The epoch's draw depends only on ``(seed, epoch)``. Within a source the positions follow a fresh
    permutation, and a source drawn more often than it has structures goes through all of them before any
    repeats; the ``r``-th repeat of position ``i`` is yielded as ``i + r * n`` (``n`` positions in all, see
    :class:`~contrast.data.sources.SourcePart`). Under DDP the draw holds ``num_replicas * len(self)`` slots
    and rank ``r`` takes every ``num_replicas``-th from ``r`` on: the ranks' parts are disjoint and together
    make the draw. Being a ``DistributedSampler``, Lightning's ``use_distributed_sampler`` leaves it in place
    instead of sharding it again.

    Args:
        sources: the source of each position, [n] int.
        probabilities: probability of each source, [K] (see :func:`source_probabilities`).
        num_samples: slots per epoch over all ranks (default ``n``), rounded up to a multiple of
            ``num_replicas``.
        seed: base seed.
        num_replicas: number of ranks.
        rank: this rank.
    """

    def __init__(
        self,
        sources: Sequence[int] | np.ndarray,
        probabilities: Sequence[float] | np.ndarray,
        num_samples: int | None = None,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        self.sources = np.asarray(sources, dtype=np.int64)
        super().__init__(self.sources, num_replicas=num_replicas, rank=rank, shuffle=True, seed=int(seed))
        self.probabilities = np.asarray(probabilities, dtype=np.float64)
        self.members = [np.flatnonzero(self.sources == k) for k in range(len(self.probabilities))]
        drawn_empty = [k for k, m in enumerate(self.members) if self.probabilities[k] > 0 and not len(m)]
        if drawn_empty:
            raise ValueError(f"sources {drawn_empty} have no positions but a probability above zero")
        total = len(self.sources) if num_samples is None else int(num_samples)
        if total <= 0:
            raise ValueError(f"an epoch needs at least one sample, got {total}")
        self.num_samples = math.ceil(total / self.num_replicas)  # per rank
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def draw(self, epoch: int | None = None) -> np.ndarray:
        """The epoch's positions over all ranks, [total_size] int64 (repeats offset by multiples of n)."""
        epoch = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng([self.seed, epoch])
        choice = rng.choice(len(self.probabilities), size=self.total_size, p=self.probabilities)
        draw = np.empty(self.total_size, dtype=np.int64)
        n = len(self.sources)
        for k, members in enumerate(self.members):
            slots = np.flatnonzero(choice == k)
            if not len(slots):
                continue
            rounds = -(-len(slots) // len(members))
            order = np.concatenate([rng.permutation(len(members)) for _ in range(rounds)])[: len(slots)]
            draw[slots] = members[order] + (np.arange(len(slots)) // len(members)) * n
        return draw

    def counts(self, epoch: int | None = None) -> np.ndarray:
        """Slots of each source in the epoch's draw over all ranks, [K] int64."""
        positions = self.draw(epoch) % len(self.sources)
        return np.bincount(self.sources[positions], minlength=len(self.probabilities)).astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        yield from self.draw()[self.rank :: self.num_replicas].tolist()

    def __len__(self) -> int:
        return self.num_samples
