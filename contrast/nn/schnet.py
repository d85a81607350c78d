"""SchNet-style continuous-filter convolutions (Schütt et al., J. Chem. Phys. 148, 241722, 2018)."""

from __future__ import annotations

import math

from torch import Tensor, nn
from torch_geometric.utils import scatter

from contrast.nn.base import CrystalEncoder
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

    def forward(self, x: Tensor, edge_index: Tensor, rbf: Tensor, envelope: Tensor) -> Tensor:
        """Residual update of ``x`` [N, D] from ``edge_index`` [2, E], ``rbf`` [E, K] and ``envelope`` [E]."""
        source, target = edge_index
        # The envelope goes into the filter so every message vanishes smoothly at the cutoff.
        w = self.filter_net(rbf) * envelope.unsqueeze(-1)  # [E, D]
        messages = self.in_to_filter(x)[source] * w  # [E, D]
        aggregated = scatter(messages, target, dim=0, dim_size=x.shape[0], reduce="sum")  # [N, D]
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
    """

    def __init__(
        self,
        hidden_dim: int = 64,
        num_layers: int = 3,
        cutoff: float = 5.0,
        num_rbf: int = 32,
        max_z: int = 100,
    ):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.cutoff = float(cutoff)
        self.num_rbf = num_rbf
        self.embedding = nn.Embedding(max_z + 1, hidden_dim)
        self.interactions = nn.ModuleList(Interaction(hidden_dim, num_rbf) for _ in range(num_layers))

    def forward(self, data, pos: Tensor | None = None, cell: Tensor | None = None) -> Tensor:
        """Per-atom features [N, D]; ``pos`` [N, 3] and ``cell`` [B, 3, 3] override the data's own."""
        _, lengths, envelope = self.edge_geometry(data, pos, cell)  # [E, 3], [E], [E]
        rbf = gaussian_rbf(lengths, self.num_rbf, self.cutoff)  # [E, K]
        x = self.embedding(data.z)  # [N, D]
        for interaction in self.interactions:
            x = interaction(x, data.edge_index, rbf, envelope)  # [N, D]
        return x
