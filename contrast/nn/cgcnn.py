"""CGCNN-style gated graph convolution (Xie & Grossman, Phys. Rev. Lett. 120, 145301, 2018)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from contrast.nn.base import CrystalEncoder
from contrast.nn.geometry import gaussian_rbf


class CGConv(nn.Module):
    """One gated convolution ``v_i <- v_i + sum_j u(d_ij) sigmoid(W_f z_ij) * softplus(W_s z_ij)``.

    ``z_ij = [LN(v_i), LN(v_j), rbf(d_ij)]``. The paper normalises with BatchNorm; here a per-atom LayerNorm
    is applied to the inputs of the gate instead (pre-norm), so every atom's update depends only on its own
    neighbourhood: energies stay exactly extensive and independent of what else is in the batch.

    Args:
        hidden_dim: width D of atom features.
        num_rbf: number of radial basis functions.
    """

    def __init__(self, hidden_dim: int, num_rbf: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_dim)
        self.gate_and_core = nn.Linear(2 * hidden_dim + num_rbf, 2 * hidden_dim)

    def forward(self, v: Tensor, edge_index: Tensor, rbf: Tensor, envelope: Tensor) -> Tensor:
        """Update atom features ``v`` [N, D] from ``edge_index`` [2, E], ``rbf`` [E, K], ``envelope`` [E]."""
        source, target = edge_index
        normed = self.norm(v)  # [N, D]
        z = torch.cat([normed[target], normed[source], rbf], dim=-1)  # [E, 2D + K]
        gate, core = self.gate_and_core(z).chunk(2, dim=-1)  # [E, D] each
        # The envelope takes each message to zero at the cutoff, so crossing it is smooth.
        message = torch.sigmoid(gate) * nn.functional.softplus(core) * envelope.unsqueeze(-1)  # [E, D]
        return v + scatter(message, target, dim=0, dim_size=v.shape[0], reduce="sum")


class CGCNN(CrystalEncoder):
    """Crystal graph convolutional network with gated edge convolutions and a smooth cutoff envelope.

    Args:
        hidden_dim: width D of atom features and embeddings.
        num_layers: number of gated convolutions.
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
        self.convs = nn.ModuleList(CGConv(hidden_dim, num_rbf) for _ in range(num_layers))
        self.out_norm = nn.LayerNorm(hidden_dim)

    def forward(self, data, pos: Tensor | None = None, cell: Tensor | None = None) -> Tensor:
        """Per-atom features [N, D]; ``pos`` [N, 3] and ``cell`` [B, 3, 3] override the data's own."""
        _, lengths, envelope = self.edge_geometry(data, pos, cell)  # [E, 3], [E], [E]
        rbf = gaussian_rbf(lengths, self.num_rbf, self.cutoff)  # [E, K]
        v = self.embedding(data.z)  # [N, D]
        for conv in self.convs:
            v = conv(v, data.edge_index, rbf, envelope)  # [N, D]
        return self.out_norm(v)
