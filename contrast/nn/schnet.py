"""SchNet-style continuous-filter convolutions (Schütt et al., J. Chem. Phys. 148, 241722, 2018)."""

from __future__ import annotations

import math

from torch import Tensor, nn

from contrast.graph.convert import MAX_Z
from contrast.nn.base import CrystalEncoder, EdgeBlocks, check_pooling, check_readout_layers
from contrast.nn.geometry import gaussian_rbf


class ShiftedSoftplus(nn.Module):
    """``softplus(x) - log 2``: smooth, and zero at zero so that empty neighbourhoods add nothing."""

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.softplus(x) - math.log(2.0)


class Interaction(nn.Module):
    """Continuous-filter convolution block: atom-wise, cfconv with a filter network on the rbf, atom-wise.

    Args:
        hidden_dim: width D of atom features and filters.
        num_rbf: number of radial basis functions.
    """

    def __init__(self, hidden_dim: int, num_rbf: int):
        super().__init__()
        self.filter_net = nn.Sequential(
            nn.Linear(num_rbf, hidden_dim), ShiftedSoftplus(), nn.Linear(hidden_dim, hidden_dim)
        )
        self.in_to_filter = nn.Linear(hidden_dim, hidden_dim, bias=False)
        self.out = nn.Sequential(
            nn.Linear(hidden_dim, hidden_dim), ShiftedSoftplus(), nn.Linear(hidden_dim, hidden_dim)
        )

    def forward(self, x: Tensor, edges: EdgeBlocks, rbf: list[Tensor], envelope: list[Tensor]) -> Tensor:
        """Residual update of ``x`` [N, D] from the edge blocks' ``rbf`` [E_b, K] and ``envelope`` [E_b]."""
        h = self.in_to_filter(x)  # [N, D]

        def message(k: int, source: Tensor) -> Tensor:
            # The envelope goes into the filter so every message vanishes smoothly at the cutoff.
            w = self.filter_net(rbf[k]) * envelope[k].unsqueeze(-1)  # [E_b, D]
            return h.index_select(0, source) * w  # [E_b, D]

        aggregated = edges.scatter_sum(message, x.shape[0])  # [N, D]
        return x + self.out(aggregated)


class SchNet(CrystalEncoder):
    """SchNet encoder: atom embeddings refined by continuous-filter convolutions, with a smooth envelope.

    No normalisation layers, so energies are exactly extensive and independent of the batch.

    Args:
        hidden_dim: width D of atom features and embeddings.
        num_layers: number of interaction blocks.
        cutoff: radius in Å beyond which neighbours are ignored (smoothly).
        num_rbf: number of Gaussian radial basis functions on [0, cutoff].
        max_z: largest atomic number that can be embedded.
        pooling: the graph readout, ``mean`` or several of ``mean+std+max``.
        readout_layers: ``last`` or ``all``: the features ``embed`` pools (see ``CrystalEncoder``).
    """

    def __init__(
        self,
        hidden_dim: int = 64,
        num_layers: int = 3,
        cutoff: float = 5.0,
        num_rbf: int = 32,
        max_z: int = MAX_Z,
        pooling: str = "mean",
        readout_layers: str = "last",
    ):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.cutoff = float(cutoff)
        self.pooling = check_pooling(pooling)
        self.readout_layers = check_readout_layers(readout_layers)
        self.num_rbf = num_rbf
        self.embedding = nn.Embedding(max_z + 1, hidden_dim)
        self.interactions = nn.ModuleList(Interaction(hidden_dim, num_rbf) for _ in range(num_layers))

    def blocks(self) -> list[list[nn.Module]]:
        """Embedding, then interaction k for k = 1..L."""
        return [[self.embedding], *([interaction] for interaction in self.interactions)]

    def forward(self, data, pos: Tensor | None = None, cell: Tensor | None = None) -> Tensor:
        """Per-atom features [N, D]; ``pos`` [N, 3] and ``cell`` [B, 3, 3] override the data's own."""
        return self.layer_features(data, pos, cell)[-1]

    def layer_features(self, data, pos: Tensor | None = None, cell: Tensor | None = None) -> list[Tensor]:
        """Per-atom features [N, D] after the embedding and after each interaction (L + 1 of them)."""
        _, lengths, envelope = self.edge_geometry(data, pos, cell)  # [E, 3], [E], [E]
        edges = self.edge_blocks(data)
        rbf = [gaussian_rbf(d, self.num_rbf, self.cutoff) for d in edges.split(lengths)]  # [E_b, K] each
        envelope = edges.split(envelope)  # [E_b] each
        features = [self.embedding(data.z)]  # [N, D]
        for interaction in self.interactions:
            features.append(interaction(features[-1], edges, rbf, envelope))  # [N, D]
        return features
