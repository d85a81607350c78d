"""Heads of the self-supervised pretext objectives: displacement (denoising) and masked-species prediction."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from contrast.nn.geometry import edge_lengths, edge_vectors, gaussian_rbf, polynomial_envelope


class DisplacementHead(nn.Module):
    """Per-atom displacement vectors [N, 3] from per-atom features, equivariant for any encoder.

    Each edge j -> i contributes ``w(h_i, h_j, rbf(d_ij)) * u_ij`` with ``u_ij`` the unit vector from i to j,
    so the prediction rotates with the structure even when the encoder's features are invariant scalars.

    Args:
        in_dim: width of the per-atom features.
        cutoff: the encoder's cutoff, Å (the envelope takes each edge's weight to zero there).
        hidden_dim: width of the edge MLP.
        num_rbf: Gaussian radial basis functions on [0, cutoff].
    """

    def __init__(self, in_dim: int, cutoff: float, hidden_dim: int = 64, num_rbf: int = 16):
        super().__init__()
        self.cutoff = float(cutoff)
        self.num_rbf = int(num_rbf)
        self.edge_mlp = nn.Sequential(
            nn.Linear(2 * in_dim + num_rbf, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, 1)
        )

    def forward(self, features: Tensor, data) -> Tensor:
        """Displacements [N, 3] of the atoms of ``data`` from their features [N, in_dim]."""
        source, target = data.edge_index  # [E], [E]
        vectors = edge_vectors(data)  # [E, 3]
        lengths = edge_lengths(vectors)  # [E]
        radial = gaussian_rbf(lengths, self.num_rbf, self.cutoff)  # [E, K]
        inputs = torch.cat(
            [features.index_select(0, target), features.index_select(0, source), radial], dim=-1
        )
        weight = self.edge_mlp(inputs).squeeze(-1) * polynomial_envelope(lengths, self.cutoff)  # [E]
        unit = vectors / lengths.clamp_min(1e-9).unsqueeze(-1)  # [E, 3]
        return scatter(weight.unsqueeze(-1) * unit, target, dim=0, dim_size=features.shape[0], reduce="sum")


class SpeciesHead(nn.Module):
    """Element logits [M, num_species] of (masked) atoms from their features [M, in_dim].

    Args:
        in_dim: width of the per-atom features.
        num_species: number of classes (the encoder's ``max_z + 1``; index 0, the mask token, is no target).
        hidden_dim: width of the hidden layer.
    """

    def __init__(self, in_dim: int, num_species: int, hidden_dim: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, num_species))

    def forward(self, features: Tensor) -> Tensor:
        """[M, in_dim] -> [M, num_species]."""
        return self.net(features)
