"""Per-view pipelines and the two-view dataset used by contrastive pretraining.

A view is made by the structure-level transforms (on ``z``, ``pos``, ``cell``), a rebuilt periodic
neighbour list, then the graph-level transforms (on the built graph). Item ``i`` of a :class:`ViewDataset`
at epoch ``e`` draws all its randomness from one ``torch.Generator`` seeded by ``(seed, e, i)``, so a run, a
resumed run and runs with any number of DataLoader workers see identical views. A ``fixed`` view dataset (the
validation and test splits) seeds item ``i`` by ``(seed, i)`` alone: the same views every epoch, so the
validation loss of two epochs compares the encoder, not two draws of views.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from torch_geometric.data import Data

from contrast.augment._base import STALE_FIELDS
from contrast.augment.compose import Compose, Transform
from contrast.graph.convert import CrystalArrays, StructureError, arrays_to_graph

_GRAPH_FIELDS = ("z", "pos", "cell", "edge_index", "cell_shift", "num_nodes")


def rebuild_graph(data: Data, cutoff: float) -> Data:
    """Recompute the periodic neighbour list of ``data``, keeping its dtype and its other attributes.

    Labels of the unperturbed structure (``energy``, ``forces``, ``stress``) are always dropped, so every view
    of a dataset carries the same fields whichever transforms fired (batches need matching keys).

    Raises:
        StructureError: the view is not a valid crystal (e.g. atoms pushed closer than 0.5 Å).
    """
    crystal = CrystalArrays(
        z=data.z.detach().cpu().numpy().astype(np.int64),
        pos=data.pos.detach().cpu().numpy().astype(np.float64),
        cell=data.cell[0].detach().cpu().numpy().astype(np.float64),
    )
    extra = {k: v for k, v in data.items() if k not in _GRAPH_FIELDS and k not in STALE_FIELDS}
    graph = arrays_to_graph(crystal, cutoff, require_neighbours=False, dtype=data.pos.dtype, extra=extra)
    if data.cell.dtype != data.pos.dtype:
        graph.cell = graph.cell.to(data.cell.dtype)
    return graph


class ViewPipeline:
    """One view: structure-level transforms, a rebuilt neighbour list, graph-level transforms.

    Args:
        structure: transforms acting on ``z``, ``pos`` and ``cell``.
        graph: transforms acting on the built graph (masking, edge dropping).
        cutoff: neighbour cutoff in Å for the rebuilt graph.
        max_attempts: structure-level transforms that yield an invalid crystal (atoms closer than 0.5 Å) are
            redrawn from the same generator this many times before the error is raised.
    """

    def __init__(
        self,
        structure: Sequence[Transform] = (),
        graph: Sequence[Transform] = (),
        cutoff: float = 5.0,
        max_attempts: int = 5,
    ):
        self.structure = Compose(list(structure))
        self.graph = Compose(list(graph))
        self.cutoff = float(cutoff)
        self.max_attempts = int(max_attempts)

    def __call__(self, data: Data, generator: torch.Generator) -> Data:
        """Build one view of ``data`` (not modified); a graph that follows the graph contract."""
        if len(self.structure) == 0 and getattr(data, "edge_index", None) is not None:
            return self.graph(data, generator)
        error = None
        for _ in range(self.max_attempts):
            try:
                view = rebuild_graph(self.structure(data, generator), self.cutoff)
                return self.graph(view, generator)
            except StructureError as exc:
                error = exc
        entry = data.idx.view(-1)[0].item() if getattr(data, "idx", None) is not None else None
        raise StructureError(
            f"no valid view after {self.max_attempts} attempts of {self.structure!r}: {error.reason}",
            entry=entry,
        )

    def __repr__(self) -> str:
        return f"ViewPipeline(structure={self.structure!r}, graph={self.graph!r}, cutoff={self.cutoff!r})"


def view_seed(seed: int, epoch: int | None, index: int) -> int:
    """A 63-bit generator seed mixed from ``(seed, epoch, index)`` (well spread, independent of workers).

    ``epoch=None`` gives the seed of a fixed view, the same every epoch and distinct from every epoch's seed.
    """
    if min(seed, index, 0 if epoch is None else epoch) < 0:
        raise ValueError(f"seed, epoch and index must be non-negative, got {(seed, epoch, index)}")
    if epoch is None:  # another spawn key: a stream apart from all (seed, epoch, index)
        sequence = np.random.SeedSequence([seed, index], spawn_key=(_FIXED_STREAM,))
    else:
        sequence = np.random.SeedSequence([seed, epoch, index])
    words = sequence.generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


_FIXED_STREAM = 1


class ViewDataset(Dataset):
    """Item ``i`` is ``(view_a(data_i, g), view_b(data_i, g))`` with ``g`` seeded by ``(seed, epoch, i)``.

    The epoch lives in a shared-memory tensor so that :meth:`set_epoch` also reaches persistent DataLoader
    workers. Call it before the epoch's iterator is created (e.g. in ``on_train_epoch_start``).

    Args:
        dataset: any indexable dataset of contract graphs.
        view_a: pipeline of the first view.
        view_b: pipeline of the second view.
        seed: base seed of the views.
        fixed: seed item ``i`` by ``(seed, i)`` only, so its views are the same every epoch (for validation
            and test splits); the epoch is still recorded but does not change the views.
    """

    def __init__(
        self, dataset, view_a: ViewPipeline, view_b: ViewPipeline, seed: int = 0, fixed: bool = False
    ):
        self.dataset = dataset
        self.view_a = view_a
        self.view_b = view_b
        self.seed = int(seed)
        self.fixed = bool(fixed)
        self._epoch = torch.zeros((), dtype=torch.long).share_memory_()

    @property
    def epoch(self) -> int:
        """The epoch the views are currently drawn for."""
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Draw fresh views for ``epoch`` (deterministic given the seed; no change when ``fixed``)."""
        self._epoch.fill_(int(epoch))

    def generator(self, index: int) -> torch.Generator:
        """The generator of item ``index`` at the current epoch (the same at every epoch when ``fixed``)."""
        epoch = None if self.fixed else self.epoch
        return torch.Generator().manual_seed(view_seed(self.seed, epoch, int(index)))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Data, Data]:
        data = self.dataset[index]
        generator = self.generator(index)
        return self.view_a(data, generator), self.view_b(data, generator)

    def __repr__(self) -> str:
        return (
            f"ViewDataset(n={len(self)}, seed={self.seed}, fixed={self.fixed}, view_a={self.view_a!r}, "
            f"view_b={self.view_b!r})"
        )


class TwoViews:
    """The two (possibly asymmetric) view pipelines of contrastive pretraining.

    Args:
        view_a: pipeline of the first view.
        view_b: pipeline of the second view.
        seed: base seed of the views.
    """

    def __init__(self, view_a: ViewPipeline, view_b: ViewPipeline, seed: int = 0):
        self.view_a = view_a
        self.view_b = view_b
        self.seed = int(seed)

    def __call__(self, data: Data, generator: torch.Generator) -> tuple[Data, Data]:
        """Both views of one graph, drawn one after the other from ``generator``."""
        return self.view_a(data, generator), self.view_b(data, generator)

    def wrap(self, dataset, fixed: bool = False) -> ViewDataset:
        """A dataset of view pairs over ``dataset`` (collate with ``torch_geometric.loader.DataLoader``);
        ``fixed=True`` keeps each item's views the same every epoch (validation and test splits)."""
        return ViewDataset(dataset, self.view_a, self.view_b, self.seed, fixed)

    def __repr__(self) -> str:
        return f"TwoViews(view_a={self.view_a!r}, view_b={self.view_b!r}, seed={self.seed})"
