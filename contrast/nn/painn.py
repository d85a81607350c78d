"""PaiNN: polarizable atom interaction network (Schütt, Unke & Gastegger, ICML 2021).

Equivariant message passing with scalar features ``s`` [N, D] and vector features ``v`` [N, 3, D]. Scalars are
invariant and vectors rotate with the structure; energies are read from the scalars. Inside the blocks the
vectors are stored component-first, [3, N, D], so that every per-edge tensor is a plain [E, D] matrix: on the
CPU, products broadcast over a [E, 3, D] tensor and their sums in the backward pass cost several times more.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from contrast.graph.convert import MAX_Z
from contrast.nn.base import CrystalEncoder, EdgeBlocks, check_pooling, check_readout_layers
from contrast.nn.geometry import bessel_rbf
from contrast.nn.painn_message import message_sum_

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
        self,
        s: Tensor,
        v: Tensor | None,
        edges: EdgeBlocks,
        radial: list[Tensor],
        unit: list[Tensor],
    ) -> tuple[Tensor, Tensor]:
        """Residual update of ``s`` [N, D] and ``v`` [3, N, D] (None stands for zero vectors, as in the first
        block, which then skips their per-edge terms).

        Per edge block: ``radial`` [E_b, K + 1], the radial basis and a column of ones, both multiplied by the
        envelope (see :meth:`PaiNN.forward_with_vectors`), and ``unit`` [3, E_b], the components of the unit
        vectors from i to j.
        """
        d = self.hidden_dim
        n = s.shape[0]
        # filter(rbf) * envelope == ([rbf, 1] * envelope) @ [W, b]^T: the envelope makes every message vanish
        # smoothly at the cutoff
        weight = torch.cat([self.filter.weight, self.filter.bias.unsqueeze(-1)], dim=1)  # [3D, K + 1]
        w_s, w_vv, w_vs = weight.split(d, dim=0)  # [D, K + 1] each
        phi_s, phi_vv, phi_vs = self.phi(s).split(d, dim=-1)  # [N, D] each
        # v_j * phi_vv_j * filter_vv(r_ij): the atom-wise product once per atom instead of once per edge
        v_phi = None if v is None else v * phi_vv.unsqueeze(0)  # [3, N, D]
        acc_s, acc_v = s.new_zeros(n, d), s.new_zeros(3, n, d)  # message sums [N, D], [3, N, D]
        for k, (source, target) in enumerate(edges.pairs):
            # the three filters separately, [E_b, D] each (no vv filter while the vectors are zero)
            filters = tuple(None if w is w_vv and v is None else radial[k] @ w.t() for w in (w_s, w_vv, w_vs))
            acc_s, acc_v = message_sum_(acc_s, acc_v, phi_s, phi_vs, v_phi, filters, unit[k], source, target)
        return s + acc_s, acc_v if v is None else v + acc_v


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
        """Residual update of ``s`` [N, D] and ``v`` [3, N, D]."""
        u, w = self.uv(v).split(self.hidden_dim, dim=-1)  # [3, N, D] each; linear in v keeps equivariance
        norm = torch.sqrt((w * w).sum(dim=0) + NORM_EPS)  # [N, D]
        a = self.mlp(torch.cat([s, norm], dim=-1))  # [N, 3D]
        a_vv, a_sv, a_ss = a.split(self.hidden_dim, dim=-1)  # [N, D] each
        dot = (u * w).sum(dim=0)  # [N, D]
        return s + a_ss + a_sv * dot, v + a_vv.unsqueeze(0) * u


class PaiNN(CrystalEncoder):
    """PaiNN encoder: the default for energies, forces and stress.

    No normalisation layers, so energies are exactly extensive and independent of the batch.

    Args:
        hidden_dim: width D of scalar and vector features.
        num_layers: number of message + update blocks.
        cutoff: radius in Å beyond which neighbours are ignored (smoothly).
        num_rbf: number of Bessel radial basis functions.
        max_z: largest atomic number that can be embedded.
        pooling: the graph readout, ``mean`` or several of ``mean+std+max``.
        readout_layers: ``last`` or ``all``: the scalar features ``embed`` pools (see ``CrystalEncoder``).
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
        self.messages = nn.ModuleList(Message(hidden_dim, num_rbf) for _ in range(num_layers))
        self.updates = nn.ModuleList(Update(hidden_dim) for _ in range(num_layers))

    def blocks(self) -> list[list[nn.Module]]:
        """Embedding, then (message k, update k) for k = 1..L: all messages are registered before all updates,
        so registration order is not depth order."""
        return [[self.embedding], *([m, u] for m, u in zip(self.messages, self.updates))]

    def forward_with_vectors(
        self, data, pos: Tensor | None = None, cell: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Scalar features ``s`` [N, D] (invariant) and vector features ``v`` [N, 3, D] (equivariant)."""
        scalars, v = self._propagate(data, pos, cell)
        return scalars[-1], v

    def layer_features(self, data, pos: Tensor | None = None, cell: Tensor | None = None) -> list[Tensor]:
        """Scalar features [N, D] after the embedding and after each (message, update) layer."""
        return self._propagate(data, pos, cell)[0]

    def _propagate(self, data, pos: Tensor | None, cell: Tensor | None) -> tuple[list[Tensor], Tensor]:
        """The scalar features of every depth ([N, D] each, L + 1) and the last vector features [N, 3, D]."""
        vectors, lengths, envelope = self.edge_geometry(data, pos, cell)  # [E, 3], [E], [E]
        edges = self.edge_blocks(data)
        lengths = edges.split(lengths)  # [E_b] each
        # unit vectors component-first, [3, E_b] per block
        unit = [(u / d.unsqueeze(-1)).t().contiguous() for u, d in zip(edges.split(vectors), lengths)]
        # radial basis and a column of ones, times the envelope: [E_b, K + 1] per block, shared by all layers
        radial = [
            torch.cat([bessel_rbf(d, self.num_rbf, self.cutoff), torch.ones_like(d).unsqueeze(-1)], dim=-1)
            * e.unsqueeze(-1)
            for d, e in zip(lengths, edges.split(envelope))
        ]
        s = self.embedding(data.z)  # [N, D]
        scalars = [s]
        v = None  # vector features, component-first [3, N, D]; zero to start with
        for message, update in zip(self.messages, self.updates):
            s, v = message(s, v, edges, radial, unit)
            s, v = update(s, v)
            scalars.append(s)
        if v is None:
            v = s.new_zeros(3, s.shape[0], self.hidden_dim)
        return scalars, v.permute(1, 0, 2)  # L + 1 of [N, D]; [N, 3, D]

    def forward(self, data, pos: Tensor | None = None, cell: Tensor | None = None) -> Tensor:
        """Per-atom scalar features [N, D]; ``pos`` [N, 3] and ``cell`` [B, 3, 3] override the data's own."""
        return self.forward_with_vectors(data, pos, cell)[0]
