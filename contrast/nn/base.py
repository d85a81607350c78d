"""The contract every encoder follows."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from contrast.nn.geometry import edge_lengths, edge_vectors, graph_index, polynomial_envelope


def mean_readout(node_features: Tensor, data) -> Tensor:
    """Mean-pool per-atom features into graph embeddings: [N, D] -> [B, D]."""
    num_graphs = int(getattr(data, "num_graphs", 1) or 1)
    return scatter(node_features, graph_index(data), dim=0, dim_size=num_graphs, reduce="mean")


POOLINGS = ("mean", "std", "max")  # each is the same for a crystal and any supercell of it
READOUT_LAYERS = (
    "last",
    "all",
)  # the per-atom features an embedding pools: the last layer's, or every layer's


def check_readout_layers(readout_layers: str) -> str:
    """``"last"`` or ``"all"`` (see :attr:`CrystalEncoder.readout_layers`)."""
    if readout_layers not in READOUT_LAYERS:
        raise ValueError(f"readout_layers must be one of {READOUT_LAYERS}, got {readout_layers!r}")
    return readout_layers


def check_pooling(pooling: str) -> str:
    """A ``+``-joined list of :data:`POOLINGS` (e.g. ``"mean+std+max"``), each at most once."""
    parts = str(pooling).split("+")
    if not parts or any(part not in POOLINGS for part in parts) or len(set(parts)) != len(parts):
        raise ValueError(f"pooling must join distinct names of {POOLINGS} with '+', got {pooling!r}")
    return "+".join(parts)


def pooled_readout(node_features: Tensor, data, pooling: str) -> Tensor:
    """Graph embeddings [B, P * D] from per-atom features [N, D]: the poolings of ``pooling`` side by side.

    ``std`` is the per-graph standard deviation of each feature (``sqrt(var + 1e-8)``, smooth at zero).
    """
    num_graphs = int(getattr(data, "num_graphs", 1) or 1)
    index = graph_index(data)
    mean = scatter(node_features, index, dim=0, dim_size=num_graphs, reduce="mean")  # [B, D]
    parts = []
    for name in pooling.split("+"):
        if name == "mean":
            parts.append(mean)
        elif name == "std":
            centred = node_features - mean.index_select(0, index)  # [N, D]
            variance = scatter(centred * centred, index, dim=0, dim_size=num_graphs, reduce="mean")
            parts.append(torch.sqrt(variance + 1e-8))
        else:
            parts.append(scatter(node_features, index, dim=0, dim_size=num_graphs, reduce="max"))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


EDGE_BLOCK_CPU = 16384  # edges per block on CPU; see EdgeBlocks


class EdgeBlocks:
    """A batch's edges in contiguous blocks, so that per-edge tensors stay small on the CPU.

    Message passing makes several [E, D] tensors per layer. On the CPU, glibc's ``malloc`` serves every
    allocation above 32 MB with fresh ``mmap`` pages and returns them on free, so each such tensor pays the
    kernel's page faults again on every step, a cost that grows with the cell rather than with the
    arithmetic. Blocks of ``block_size`` edges keep those tensors to a few MB, which
    ``malloc`` reuses. On a GPU the caching allocator has no such cost and kernel launches dominate, so one
    block holds every edge.

    Args:
        edge_index: [2, E] sources j and targets i.
        block_size: edges per block; None for a single block.
    """

    def __init__(self, edge_index: Tensor, block_size: int | None):
        num_edges = edge_index.shape[1]
        source, target = edge_index
        if block_size is None or num_edges <= block_size:
            self.sizes = [num_edges]
        else:
            self.sizes = [min(block_size, num_edges - start) for start in range(0, num_edges, block_size)]
        self.pairs = list(zip(self.split(source), self.split(target)))

    def __len__(self) -> int:
        return len(self.sizes)

    def split(self, edge_tensor: Tensor) -> list[Tensor]:
        """Per-block views of a per-edge tensor [E, ...].

        One ``torch.split`` for all blocks: its backward pass joins the blocks' gradients once, where a slice
        per block would each expand its gradient to a zero-filled [E, ...] tensor to be summed.
        """
        return list(torch.split(edge_tensor, self.sizes))

    def scatter_sum(
        self, message: Callable[[int, Tensor], Tensor | tuple[Tensor, ...]], num_nodes: int
    ) -> Tensor | tuple[Tensor, ...]:
        """Sum over each atom's incoming edges of ``message(block, source) -> [E_b, ...]`` (or of a tuple).

        ``message`` gets the block's number and its source atoms [E_b] and returns per-edge messages; the
        result is [num_nodes, ...] per returned tensor.
        """
        sums = None
        for k, (source, target) in enumerate(self.pairs):
            parts = message(k, source)
            single = isinstance(parts, Tensor)
            parts = (parts,) if single else tuple(parts)
            if sums is None:
                sums = tuple(m.new_zeros((num_nodes, *m.shape[1:])) for m in parts)
            for total, m in zip(sums, parts):
                total.index_add_(0, target, m)  # in place: one [N, ...] buffer for all blocks
        return sums[0] if single else sums


class CrystalEncoder(nn.Module):
    """Base class of graph encoders of periodic crystals.

    Subclasses set ``self.hidden_dim`` and ``self.cutoff`` and implement
    ``forward(data, pos=None, cell=None) -> [N, D]``, computing edge vectors inside ``forward`` with
    :func:`contrast.nn.geometry.edge_vectors` so that autograd reaches positions and strain.
    """

    hidden_dim: int
    cutoff: float
    pooling: str = "mean"  # graph readout: one or several of POOLINGS joined with "+"
    # Which per-atom features ``embed`` pools: "last" (the output of ``forward``) or "all" (the atom embedding
    # and every layer's output side by side, one per entry of ``blocks``). Contrastive pretraining reads the
    # last layer; probes and fine-tuning's mean readout read what ``embed`` gives.
    readout_layers: str = "last"
    edge_block_size: int | None = EDGE_BLOCK_CPU  # on CPU only; set None to process all edges at once

    @property
    def feature_dim(self) -> int:
        """Width D of per-atom features."""
        return self.hidden_dim

    @property
    def embedding_dim(self) -> int:
        """Width of graph embeddings: D per pooling, times the number of layers read (``readout_layers``)."""
        layers = len(self.blocks()) if self.readout_layers == "all" else 1
        return self.hidden_dim * layers * len(self.pooling.split("+"))

    def embed(self, data) -> Tensor:
        """Graph embeddings [B, embedding_dim] (intensive: a supercell gives the same embedding)."""
        if self.readout_layers == "all":
            features = torch.cat(self.layer_features(data), dim=-1)  # [N, (L + 1) * D]
        else:
            features = self(data)  # [N, D]
        return self.readout(features, data)

    def layer_features(self, data, pos: Tensor | None = None, cell: Tensor | None = None) -> list[Tensor]:
        """Per-atom features [N, D] after the atom embedding and after each layer, in depth order (L + 1 of
        them, one per entry of :meth:`blocks`); the last is what ``forward`` returns."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its layers' features")

    def readout(self, features: Tensor, data) -> Tensor:
        """Graph embeddings [B, P * F] from per-atom features [N, F] (``pooling`` over each graph; F is D, or
        (L + 1) * D for the features of every layer)."""
        if self.pooling == "mean":
            return mean_readout(features, data)
        return pooled_readout(features, data, self.pooling)

    def blocks(self) -> list[list[nn.Module]]:  # pragma: no cover
        """The encoder's modules by depth, from input to output: the atom embedding first, then one list per
        message-passing layer (the modules of one layer share a list). Every trainable parameter belongs to
        exactly one block. Layer-wise learning-rate decay follows this order, not registration order."""
        raise NotImplementedError

    def forward(
        self, data, pos: Tensor | None = None, cell: Tensor | None = None
    ) -> Tensor:  # pragma: no cover
        """Per-atom features [N, D]; ``pos`` [N, 3] and ``cell`` [B, 3, 3] override the data's own."""
        raise NotImplementedError

    def edge_geometry(
        self, data, pos: Tensor | None = None, cell: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Edge vectors [E, 3], lengths [E] and the smooth cutoff envelope [E], from ``pos`` and ``cell``."""
        vectors = edge_vectors(data, pos=pos, cell=cell)  # [E, 3]
        lengths = edge_lengths(vectors)  # [E]
        return vectors, lengths, polynomial_envelope(lengths, self.cutoff)

    def edge_blocks(self, data) -> EdgeBlocks:
        """The batch's edges in blocks of ``edge_block_size`` on CPU, one block on other devices."""
        on_cpu = data.edge_index.device.type == "cpu"
        return EdgeBlocks(data.edge_index, self.edge_block_size if on_cpu else None)


def num_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = [
    "POOLINGS",
    "CrystalEncoder",
    "EdgeBlocks",
    "READOUT_LAYERS",
    "check_pooling",
    "check_readout_layers",
    "mean_readout",
    "num_parameters",
    "pooled_readout",
]
