"""PaiNN: polarizable atom interaction network (Schütt, Unke & Gastegger, ICML 2021).

Equivariant message passing with scalar features ``s`` [N, D] and vector features ``v`` [N, 3, D]. Scalars are
invariant and vectors rotate with the structure; energies are read from the scalars.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from contrast.nn.base import CrystalEncoder
from contrast.nn.geometry import bessel_rbf

# Keeps the gradient of |v| finite at v = 0 (vector features start at zero).
NORM_EPS = 1e-8


class Message(nn.Module):
    """PaiNN message block: radial filters mix neighbour scalars and vectors into updates of atom i.

    Args:
        hidden_dim: width D.
        num_rbf: number of radial basis functions.
    """

    def __init__(self, hidden_dim: int, num_rbf: int):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.phi = nn.Sequential(
            nn.Linear(hidden_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, 3 * hidden_dim)
        )
        self.filter = nn.Linear(num_rbf, 3 * hidden_dim)

    def forward(
        self, s: Tensor, v: Tensor, edge_index: Tensor, rbf: Tensor, unit: Tensor, envelope: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Residual update of ``s`` [N, D] and ``v`` [N, 3, D].

        ``rbf`` [E, K], ``unit`` [E, 3] (unit vectors from i to j) and ``envelope`` [E] describe the edges.
        """
        source, target = edge_index
        d = self.hidden_dim
        # The envelope sits in the filter, so every message vanishes smoothly at the cutoff.
        w = self.filter(rbf) * envelope.unsqueeze(-1)  # [E, 3D]
        x = self.phi(s)[source] * w  # [E, 3D]
        x_s, x_vv, x_vs = x.split(d, dim=-1)  # [E, D] each
        dv = v[source] * x_vv.unsqueeze(1) + unit.unsqueeze(-1) * x_vs.unsqueeze(1)  # [E, 3, D]
        n = s.shape[0]
        ds = scatter(x_s, target, dim=0, dim_size=n, reduce="sum")  # [N, D]
        dv = scatter(dv.reshape(-1, 3 * d), target, dim=0, dim_size=n, reduce="sum").view(
            n, 3, d
        )  # [N, 3, D]
        return s + ds, v + dv


class Update(nn.Module):
    """PaiNN update block: atom-wise mixing of scalars and vectors through invariant norms and dot products.

    Args:
        hidden_dim: width D.
    """

    def __init__(self, hidden_dim: int):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.uv = nn.Linear(hidden_dim, 2 * hidden_dim, bias=False)
        self.mlp = nn.Sequential(
            nn.Linear(2 * hidden_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, 3 * hidden_dim)
        )

    def forward(self, s: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Residual update of ``s`` [N, D] and ``v`` [N, 3, D]."""
        u, w = self.uv(v).split(self.hidden_dim, dim=-1)  # [N, 3, D] each; linear in v keeps equivariance
        norm = torch.sqrt((w * w).sum(dim=1) + NORM_EPS)  # [N, D]
        a = self.mlp(torch.cat([s, norm], dim=-1))  # [N, 3D]
        a_vv, a_sv, a_ss = a.split(self.hidden_dim, dim=-1)  # [N, D] each
        dot = (u * w).sum(dim=1)  # [N, D]
        return s + a_ss + a_sv * dot, v + a_vv.unsqueeze(1) * u


class PaiNN(CrystalEncoder):
    """PaiNN encoder: the default for energies, forces and stress.

    No normalisation layers, so energies are exactly extensive and independent of the batch.

    Args:
        hidden_dim: width D of scalar and vector features.
        num_layers: number of message + update blocks.
        cutoff: radius in Å beyond which neighbours are ignored (smoothly).
        num_rbf: number of Bessel radial basis functions.
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
        self.messages = nn.ModuleList(Message(hidden_dim, num_rbf) for _ in range(num_layers))
        self.updates = nn.ModuleList(Update(hidden_dim) for _ in range(num_layers))

    def forward_with_vectors(
        self, data, pos: Tensor | None = None, cell: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Scalar features ``s`` [N, D] (invariant) and vector features ``v`` [N, 3, D] (equivariant)."""
        vectors, lengths, envelope = self.edge_geometry(data, pos, cell)  # [E, 3], [E], [E]
        unit = vectors / lengths.unsqueeze(-1)  # [E, 3]
        rbf = bessel_rbf(lengths, self.num_rbf, self.cutoff)  # [E, K]
        s = self.embedding(data.z)  # [N, D]
        v = s.new_zeros(s.shape[0], 3, self.hidden_dim)  # [N, 3, D]
        for message, update in zip(self.messages, self.updates):
            s, v = message(s, v, data.edge_index, rbf, unit, envelope)
            s, v = update(s, v)
        return s, v

    def forward(self, data, pos: Tensor | None = None, cell: Tensor | None = None) -> Tensor:
        """Per-atom scalar features [N, D]; ``pos`` [N, 3] and ``cell`` [B, 3, 3] override the data's own."""
        return self.forward_with_vectors(data, pos, cell)[0]
