"""CGCNN-style gated graph convolution (Xie & Grossman, Phys. Rev. Lett. 120, 145301, 2018)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from contrast.graph.convert import MAX_Z
from contrast.nn.base import CrystalEncoder, EdgeBlocks, check_pooling, check_readout_layers
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

    def forward(self, v: Tensor, edges: EdgeBlocks, rbf: list[Tensor], envelope: list[Tensor]) -> Tensor:
        """Update atom features ``v`` [N, D] from the edge blocks' ``rbf`` [E_b, K] and ``envelope`` [E_b]."""
        normed = self.norm(v)  # [N, D]

        def message(k: int, source: Tensor) -> Tensor:
            target = edges.pairs[k][1]
            # index_select rather than normed[target]: far cheaper on the CPU, forward and backward
            z = torch.cat(
                [normed.index_select(0, target), normed.index_select(0, source), rbf[k]], dim=-1
            )  # [E_b, 2D + K]
            gate, core = self.gate_and_core(z).chunk(2, dim=-1)  # [E_b, D] each
            # The envelope takes each message to zero at the cutoff, so crossing it is smooth.
            return torch.sigmoid(gate) * nn.functional.softplus(core) * envelope[k].unsqueeze(-1)  # [E_b, D]

        return v + edges.scatter_sum(message, v.shape[0])


class CGCNN(CrystalEncoder):
    """Crystal graph convolutional network with gated edge convolutions and a smooth cutoff envelope.

    Args:
        hidden_dim: width D of atom features and embeddings.
        num_layers: number of gated convolutions.
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
        self.convs = nn.ModuleList(CGConv(hidden_dim, num_rbf) for _ in range(num_layers))
        self.out_norm = nn.LayerNorm(hidden_dim)

    def blocks(self) -> list[list[nn.Module]]:
        """Embedding, then convolution k for k = 1..L; the output norm belongs to the last layer."""
        layers = [[conv] for conv in self.convs] or [[]]
        layers[-1].append(self.out_norm)
        return [[self.embedding], *layers]

    def forward(self, data, pos: Tensor | None = None, cell: Tensor | None = None) -> Tensor:
        """Per-atom features [N, D]; ``pos`` [N, 3] and ``cell`` [B, 3, 3] override the data's own."""
        return self.layer_features(data, pos, cell)[-1]

    def layer_features(self, data, pos: Tensor | None = None, cell: Tensor | None = None) -> list[Tensor]:
        """Per-atom features [N, D] after the embedding and after each convolution (L + 1 of them); the
        output norm, part of the last layer, normalises the last."""
        _, lengths, envelope = self.edge_geometry(data, pos, cell)  # [E, 3], [E], [E]
        edges = self.edge_blocks(data)
        rbf = [gaussian_rbf(d, self.num_rbf, self.cutoff) for d in edges.split(lengths)]  # [E_b, K] each
        envelope = edges.split(envelope)  # [E_b] each
        features = [self.embedding(data.z)]  # [N, D]
        for conv in self.convs:
            features.append(conv(features[-1], edges, rbf, envelope))  # [N, D]
        if self.convs:
            features[-1] = self.out_norm(features[-1])
        else:  # the norm is the only module of the last block
            features.append(self.out_norm(features[-1]))
        return features
