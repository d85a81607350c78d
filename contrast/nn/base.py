"""The contract every encoder follows."""

from __future__ import annotations

from torch import Tensor, nn
from torch_geometric.utils import scatter

from contrast.nn.geometry import edge_lengths, edge_vectors, graph_index, polynomial_envelope


def mean_readout(node_features: Tensor, data) -> Tensor:
    """Mean-pool per-atom features into graph embeddings: [N, D] -> [B, D]."""
    num_graphs = int(getattr(data, "num_graphs", 1) or 1)
    return scatter(node_features, graph_index(data), dim=0, dim_size=num_graphs, reduce="mean")


class CrystalEncoder(nn.Module):
    """Base class of graph encoders of periodic crystals.

    Subclasses set ``self.hidden_dim`` and ``self.cutoff`` and implement
    ``forward(data, pos=None, cell=None) -> [N, D]``, computing edge vectors inside ``forward`` with
    :func:`contrast.nn.geometry.edge_vectors` so that autograd reaches positions and strain.
    """

    hidden_dim: int
    cutoff: float

    @property
    def embedding_dim(self) -> int:
        """Width D of per-atom features and graph embeddings."""
        return self.hidden_dim

    def embed(self, data) -> Tensor:
        """Mean-pooled graph embeddings [B, D] (intensive: a supercell gives the same embedding)."""
        return mean_readout(self(data), data)

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


def num_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = ["CrystalEncoder", "mean_readout", "num_parameters"]
