"""Two-view pretraining with the geometric augmentations and the neighbour search on the batch's device.

The per-item views (:mod:`contrast.augment.views`) run in DataLoader workers and search every view's
neighbours on the CPU, which limits a GPU's training rate. Here the loader yields collated structures without
edges and the views are made after the batch reached the device (``ContrastiveTask.on_after_batch_transfer``):

- **batched, on the device**: :class:`BatchedRotation`, :class:`BatchedStrain`, :class:`BatchedPositionNoise`,
  :class:`BatchedOriginShift` (per structure), then :func:`rebuild_edges`
  (:func:`contrast.graph.batched.batch_neighbour_list`), then :class:`BatchedEdgeDrop`;
- **per item, on the CPU** (:data:`PER_ITEM`): ``SiteRemoval``, ``SpeciesSubstitution``, ``AtomMask`` and
  ``RandomSupercell`` change atoms, not coordinates, search no neighbours and stay cheap in the workers. They
  run before the device transforms; this reorders nothing that matters, since they commute with the rigid,
  affine and per-atom geometric transforms (a supercell is refused after position noise, where it would not).

Each batched transform is called as ``transform(batch, generator) -> batch``: it returns a shallow copy with
new tensors and draws from a ``torch.Generator`` on the batch's device (so the views of a seed are the same on
one kind of device, not across CPU and GPU). Every transform draws once per structure for its gate ``p``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from contrast.augment._base import STALE_FIELDS, check_fraction, check_probability, format_repr
from contrast.augment.atom_mask import AtomMask
from contrast.augment.compose import Compose
from contrast.augment.edge_drop import EdgeDrop
from contrast.augment.origin_shift import OriginShift
from contrast.augment.position_noise import PositionNoise
from contrast.augment.rotation import RandomRotation
from contrast.augment.site_removal import SiteRemoval
from contrast.augment.strain import LatticeStrain
from contrast.augment.substitution import SpeciesSubstitution
from contrast.augment.supercell import RandomSupercell
from contrast.augment.views import TwoViews, ViewDataset, ViewPipeline, view_seed
from contrast.graph.batched import DEFAULT_MAX_PAIRS, batch_neighbour_list
from contrast.graph.convert import MIN_DISTANCE, StructureError

PER_ITEM = (SiteRemoval, SpeciesSubstitution, AtomMask, RandomSupercell)


def _rand(generator: torch.Generator, *shape: int) -> Tensor:
    return torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float64)


def _fired(p: float, num_graphs: int, generator: torch.Generator) -> Tensor:
    """Which structures a transform with probability ``p`` applies to, [B] bool (one draw each)."""
    return _rand(generator, num_graphs) < p


def _with_geometry(batch, pos: Tensor, cell: Tensor):
    out = copy.copy(batch)
    out.pos, out.cell = pos.to(batch.pos.dtype), cell.to(batch.cell.dtype)
    return out


def _per_atom(matrix: Tensor, batch) -> Tensor:
    """``pos[n] @ matrix[graph of n]`` for [B, 3, 3] matrices, [N, 3]."""
    return torch.bmm(batch.pos.unsqueeze(1), matrix.to(batch.pos.dtype)[batch.batch]).squeeze(1)


class BatchedRotation:
    """:class:`~contrast.augment.rotation.RandomRotation` per structure: ``pos @ R.T``, ``cell @ R.T``."""

    def __init__(self, p: float = 1.0, max_angle: float = 180.0):
        RandomRotation(p, max_angle)  # the same checks
        self.p, self.max_angle = float(p), float(max_angle)

    def __call__(self, batch, generator: torch.Generator):
        num_graphs = batch.num_graphs
        fired = _fired(self.p, num_graphs, generator)  # [B]
        if self.max_angle >= 180.0:  # uniform over SO(3) from unit quaternions
            q = torch.randn(num_graphs, 4, generator=generator, device=generator.device, dtype=torch.float64)
            w, x, y, z = (q / q.norm(dim=1, keepdim=True)).unbind(1)  # [B] each
            rows = [
                [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
            ]
            rotation = torch.stack([torch.stack(row, -1) for row in rows], -2)  # [B, 3, 3]
        else:  # axis uniform on the sphere, angle uniform in [0, max_angle] (Rodrigues)
            axis = torch.randn(
                num_graphs, 3, generator=generator, device=generator.device, dtype=torch.float64
            )
            ax, ay, az = (axis / axis.norm(dim=1, keepdim=True)).unbind(1)
            angle = math.radians(self.max_angle) * _rand(generator, num_graphs)  # [B]
            zero = torch.zeros_like(ax)
            skew = torch.stack([zero, -az, ay, az, zero, -ax, -ay, ax, zero], -1).view(-1, 3, 3)  # [B, 3, 3]
            eye = torch.eye(3, dtype=torch.float64, device=skew.device)
            sin, cos = angle.sin()[:, None, None], angle.cos()[:, None, None]
            rotation = eye + sin * skew + (1 - cos) * skew @ skew
        eye = torch.eye(3, dtype=torch.float64, device=rotation.device).expand_as(rotation)
        transpose = torch.where(fired[:, None, None], rotation, eye).transpose(1, 2)  # [B, 3, 3]: R.T
        return _with_geometry(batch, _per_atom(transpose, batch), batch.cell @ transpose.to(batch.cell.dtype))

    def __repr__(self) -> str:
        return format_repr("BatchedRotation", p=self.p, max_angle=self.max_angle)


class BatchedStrain:
    """:class:`~contrast.augment.strain.LatticeStrain` per structure: ``pos``, ``cell`` times ``I + eps``."""

    def __init__(self, p: float = 1.0, max_strain: float = 0.03):
        LatticeStrain(p, max_strain)
        self.p, self.max_strain = float(p), float(max_strain)

    def __call__(self, batch, generator: torch.Generator):
        num_graphs = batch.num_graphs
        fired = _fired(self.p, num_graphs, generator)  # [B]
        raw = (2 * _rand(generator, num_graphs, 3, 3) - 1) * self.max_strain  # [B, 3, 3]
        strain = 0.5 * (raw + raw.transpose(1, 2)) * fired[:, None, None]  # symmetric: no rotation part
        deformation = torch.eye(3, dtype=torch.float64, device=raw.device) + strain  # [B, 3, 3]
        return _with_geometry(
            batch, _per_atom(deformation, batch), batch.cell @ deformation.to(batch.cell.dtype)
        )

    def __repr__(self) -> str:
        return format_repr("BatchedStrain", p=self.p, max_strain=self.max_strain)


class BatchedPositionNoise:
    """:class:`~contrast.augment.position_noise.PositionNoise` per structure: Gaussian displacements."""

    def __init__(self, p: float = 1.0, sigma: float = 0.05):
        PositionNoise(p, sigma)
        self.p, self.sigma = float(p), float(sigma)

    def __call__(self, batch, generator: torch.Generator):
        fired = _fired(self.p, batch.num_graphs, generator)  # [B]
        noise = torch.randn(
            batch.pos.shape, generator=generator, device=generator.device, dtype=torch.float64
        )
        noise = self.sigma * noise * fired[batch.batch, None]  # [N, 3]
        return _with_geometry(batch, batch.pos + noise.to(batch.pos.dtype), batch.cell)

    def __repr__(self) -> str:
        return format_repr("BatchedPositionNoise", p=self.p, sigma=self.sigma)


class BatchedOriginShift:
    """:class:`~contrast.augment.origin_shift.OriginShift` per structure: shift by ``u @ cell``, then wrap."""

    def __init__(self, p: float = 1.0, max_shift: float = 1.0):
        OriginShift(p, max_shift)
        self.p, self.max_shift = float(p), float(max_shift)

    def __call__(self, batch, generator: torch.Generator):
        fired = _fired(self.p, batch.num_graphs, generator)  # [B]
        shift = self.max_shift * _rand(generator, batch.num_graphs, 3)  # [B, 3] fractional
        cell = batch.cell.to(torch.float64)[batch.batch]  # [N, 3, 3]
        pos = batch.pos.to(torch.float64)
        frac = torch.linalg.solve(cell.transpose(1, 2), pos.unsqueeze(-1)).squeeze(-1) + shift[batch.batch]
        frac = frac - torch.floor(frac)
        frac = torch.where(frac >= 1.0, frac - 1.0, frac)  # round-off can leave exactly 1 after the floor
        wrapped = torch.bmm(frac.unsqueeze(1), cell).squeeze(1)  # [N, 3]
        return _with_geometry(batch, torch.where(fired[batch.batch, None], wrapped, pos), batch.cell)

    def __repr__(self) -> str:
        return format_repr("BatchedOriginShift", p=self.p, max_shift=self.max_shift)


class BatchedEdgeDrop:
    """:class:`~contrast.augment.edge_drop.EdgeDrop` per structure, on a batch with a neighbour list."""

    def __init__(self, p: float = 1.0, fraction: float = 0.1, symmetric: bool = True):
        self.p, self.fraction = check_probability(p), check_fraction(fraction)
        self.symmetric = bool(symmetric)

    def __call__(self, batch, generator: torch.Generator):
        fired = _fired(self.p, batch.num_graphs, generator)  # [B]
        source, target = batch.edge_index  # [E], [E]
        if self.symmetric:
            pairs = _pair_ids(batch.edge_index, batch.cell_shift)  # [E]
            num_pairs = int(pairs.max()) + 1 if pairs.numel() else 0
            dropped = (_rand(generator, num_pairs) < self.fraction)[pairs]  # [E]
        else:
            dropped = _rand(generator, source.shape[0]) < self.fraction  # [E]
        keep = (~(dropped & fired[batch.batch[target]])).nonzero().squeeze(1)  # [E']
        return _with_edges(batch, batch.edge_index[:, keep], batch.cell_shift[keep])

    def __repr__(self) -> str:
        return format_repr("BatchedEdgeDrop", p=self.p, fraction=self.fraction, symmetric=self.symmetric)


def _pair_ids(edge_index: Tensor, cell_shift: Tensor) -> Tensor:
    """The id of each directed edge's undirected pair, [E]: ``(j, i, S)`` and ``(i, j, -S)`` share one."""
    shift = torch.round(cell_shift).long()  # [E, 3]
    forward = torch.cat((edge_index.t(), shift), 1)  # [E, 5]
    backward = torch.cat((edge_index.flip(0).t(), -shift), 1)  # [E, 5]
    diff = forward - backward
    first = (diff != 0).long().argmax(1)  # [E]: the first differing column decides the smaller one
    forward_smaller = diff.gather(1, first[:, None]).squeeze(1) <= 0
    key = torch.where(forward_smaller[:, None], forward, backward)  # [E, 5]
    return torch.unique(key, dim=0, return_inverse=True)[1]


def _with_edges(batch, edge_index: Tensor, cell_shift: Tensor):
    """A shallow copy with a new neighbour list and its per-graph slices (so ``to_data_list`` works)."""
    out = copy.copy(batch)
    for key in STALE_FIELDS:
        if key in out:
            del out[key]
    out.edge_index, out.cell_shift = edge_index, cell_shift.to(batch.pos.dtype)
    slices = getattr(batch, "_slice_dict", None)
    if slices is not None:
        counts = torch.bincount(batch.batch[edge_index[1]], minlength=batch.num_graphs).cpu()  # [B]
        edge_slice = torch.cat((counts.new_zeros(1), counts.cumsum(0)))  # [B + 1]
        out._slice_dict = {**slices, "edge_index": edge_slice, "cell_shift": edge_slice}
        out._inc_dict = {
            **batch._inc_dict,
            "edge_index": batch.ptr[:-1].cpu(),
            "cell_shift": torch.zeros(batch.num_graphs, dtype=torch.long),
        }
    return out


def rebuild_edges(
    batch, cutoff: float, max_pairs: int = DEFAULT_MAX_PAIRS, min_distance: float | None = None
):
    """The batch with every structure's periodic neighbour list searched anew on its device.

    Labels of the unperturbed structures (``energy``, ``forces``, ``stress``) are dropped, as in
    :func:`contrast.augment.views.rebuild_graph`.

    Raises:
        StructureError: with ``min_distance``, two atoms closer than it (naming the structures' ``idx``).
    """
    edge_index, cell_shift, distance = batch_neighbour_list(
        batch.pos, batch.cell, batch.batch, cutoff, max_pairs
    )
    if min_distance is not None and distance.numel() and bool(distance.min() < min_distance):
        graphs = batch.batch[edge_index[1, distance < min_distance]].unique()
        idx = getattr(batch, "idx", None)
        entries = (idx.view(-1)[graphs] if idx is not None else graphs).tolist()
        raise StructureError(f"atoms closer than {min_distance} Å in the views of entries {entries}")
    return _with_edges(batch, edge_index, cell_shift)


_BATCHED = {
    RandomRotation: (BatchedRotation, ("p", "max_angle")),
    LatticeStrain: (BatchedStrain, ("p", "max_strain")),
    PositionNoise: (BatchedPositionNoise, ("p", "sigma")),
    OriginShift: (BatchedOriginShift, ("p", "max_shift")),
    EdgeDrop: (BatchedEdgeDrop, ("p", "fraction", "symmetric")),
}
_GEOMETRY = (BatchedRotation, BatchedStrain, BatchedPositionNoise, BatchedOriginShift)


def batched(transform):
    """The batched counterpart of a per-item geometric transform (a batched transform is returned as it is).

    Raises:
        ValueError: for a transform without a batched counterpart.
    """
    if isinstance(transform, (*_GEOMETRY, BatchedEdgeDrop)):
        return transform
    if type(transform) in _BATCHED:
        cls, names = _BATCHED[type(transform)]
        return cls(**{name: getattr(transform, name) for name in names})
    supported = sorted(t.__name__ for t in _BATCHED) + sorted(t.__name__ for t in PER_ITEM)
    raise ValueError(
        f"{transform!r} has no batched form for augment.on_device: batched on the device are "
        f"{sorted(t.__name__ for t in _BATCHED)}, per item on the CPU {sorted(t.__name__ for t in PER_ITEM)} "
        f"(supported: {supported}); use the per-item views (augment.on_device=false) for it"
    )


class BatchedPipeline:
    """One view: per-item transforms (CPU, in the workers), then batched geometry, neighbours and edge drop.

    Args:
        transforms: in the per-item pipeline's order; per-item geometric transforms are replaced by their
            batched counterparts, :data:`PER_ITEM` ones run per item before collation.
        cutoff: neighbour cutoff in Å.
        max_pairs: candidates of the neighbour search handled at once (bounds its memory).
        min_distance: refuse views with atoms closer than this (Å); None skips the check (and its sync).

    Raises:
        ValueError: a transform that neither runs batched nor per item, or a supercell after position noise.
    """

    def __init__(
        self,
        transforms: Sequence = (),
        cutoff: float = 5.0,
        max_pairs: int = DEFAULT_MAX_PAIRS,
        min_distance: float | None = MIN_DISTANCE,
    ):
        self.per_item, self.structure, self.graph = [], [], []
        for transform in transforms:
            if isinstance(transform, PER_ITEM):
                if isinstance(transform, RandomSupercell) and any(
                    isinstance(t, BatchedPositionNoise) for t in self.structure
                ):
                    raise ValueError(
                        f"{transform!r} after position noise: the supercell runs per item before the batched "
                        "noise; list it before PositionNoise"
                    )
                self.per_item.append(transform)
            elif isinstance(converted := batched(transform), BatchedEdgeDrop):
                self.graph.append(converted)
            else:
                self.structure.append(converted)
        self.cutoff = float(cutoff)
        self.max_pairs = int(max_pairs)
        self.min_distance = min_distance

    @classmethod
    def from_pipeline(cls, pipeline: ViewPipeline, **options) -> BatchedPipeline:
        """The batched form of a per-item :class:`~contrast.augment.views.ViewPipeline`."""
        transforms = [*pipeline.structure.transforms, *pipeline.graph.transforms]
        return cls(transforms, cutoff=pipeline.cutoff, **options)

    def __call__(self, batch, generator: torch.Generator):
        """The view of a collated batch (already through :attr:`per_item`), on the batch's device."""
        for transform in self.structure:
            batch = transform(batch, generator)
        batch = rebuild_edges(batch, self.cutoff, self.max_pairs, self.min_distance)
        for transform in self.graph:
            batch = transform(batch, generator)
        return batch

    def __repr__(self) -> str:
        return (
            f"BatchedPipeline(per_item={self.per_item!r}, structure={self.structure!r}, "
            f"graph={self.graph!r}, cutoff={self.cutoff!r})"
        )


class BatchedViews:
    """The two views of contrastive pretraining, made on the batch's device (``augment.on_device=true``).

    :meth:`wrap` gives the loader's dataset: structures as they are when neither view has per-item
    transforms (one collated batch serves both views), else ``(view_a, view_b)`` items after the per-item
    transforms. Calling the object on the transferred batch gives the two view batches, each following the
    graph contract.

    Args:
        view_a: pipeline of the first view.
        view_b: pipeline of the second view.
        seed: base seed of the views.
    """

    def __init__(self, view_a: BatchedPipeline, view_b: BatchedPipeline, seed: int = 0):
        self.view_a, self.view_b, self.seed = view_a, view_b, int(seed)

    @classmethod
    def from_two_views(cls, views: TwoViews | BatchedViews, **options) -> BatchedViews:
        """The batched form of per-item :class:`~contrast.augment.views.TwoViews` (raises for unsupported
        transforms, see :func:`batched`)."""
        if isinstance(views, BatchedViews):
            return views
        make = BatchedPipeline.from_pipeline
        return cls(make(views.view_a, **options), make(views.view_b, **options), views.seed)

    def wrap(self, dataset, fixed: bool = False):
        """The dataset the loader reads: structures, or pairs after the per-item transforms."""
        if not (self.view_a.per_item or self.view_b.per_item):
            return StructureItems(dataset)
        return ViewDataset(
            dataset, Compose(self.view_a.per_item), Compose(self.view_b.per_item), self.seed, fixed
        )

    def generator(self, batch, epoch: int | None) -> torch.Generator:
        """A generator on the batch's device keyed by ``(seed, epoch, the batch's dataset indices)``;
        ``epoch=None`` for views that stay the same every epoch (validation, test)."""
        first = batch[0] if isinstance(batch, (list, tuple)) else batch
        idx = getattr(first, "idx", None)
        key = 0
        if idx is not None:
            idx = idx.view(-1).long()
            key = (int(idx.sum()) * 1_000_003 + int(idx[0]) * 7_919 + int(idx.numel())) % 2**62
        generator = torch.Generator(device=first.pos.device)
        return generator.manual_seed(view_seed(self.seed, epoch, key))

    def __call__(self, batch, generator: torch.Generator) -> tuple:
        """``(view_a, view_b)`` of a batch of structures, or of the ``[batch_a, batch_b]`` of :meth:`wrap`."""
        first, second = batch if isinstance(batch, (list, tuple)) else (batch, batch)
        return self.view_a(first, generator), self.view_b(second, generator)

    def __repr__(self) -> str:
        return f"BatchedViews(view_a={self.view_a!r}, view_b={self.view_b!r}, seed={self.seed})"


class StructureItems(torch.utils.data.Dataset):
    """A dataset read as it is (structures for :class:`BatchedViews`); the epoch is kept for the loader."""

    def __init__(self, dataset):
        self.dataset, self.epoch = dataset, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[index]
