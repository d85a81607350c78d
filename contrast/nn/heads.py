"""Heads on top of an encoder: contrastive projection, property prediction and per-atom energies."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from contrast.data.composition import element_counts
from contrast.graph.convert import MAX_Z
from contrast.nn.base import CrystalEncoder
from contrast.nn.geometry import graph_index


class ProjectionHead(nn.Module):
    """MLP mapping graph embeddings [B, in_dim] to the space of the contrastive loss [B, out_dim]."""

    def __init__(self, in_dim: int, hidden_dim: int = 128, out_dim: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim))

    def forward(self, embeddings: Tensor) -> Tensor:
        """[B, in_dim] -> [B, out_dim]."""
        return self.net(embeddings)


class PropertyHead(nn.Module):
    """MLP from graph embeddings [B, in_dim] to regression targets or class logits [B, out_dim]."""

    def __init__(self, in_dim: int, hidden_dim: int = 64, out_dim: int = 1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, out_dim))

    def forward(self, embeddings: Tensor) -> Tensor:
        """[B, in_dim] -> [B, out_dim]."""
        return self.net(embeddings)


class EnergyHead(nn.Module):
    """Per-atom energies ``E_i = scale * mlp(h_i) + shift + ref[z_i]``, summed per structure.

    ``ref`` [max_z + 1] holds per-element reference energies and ``scale``/``shift`` the std and mean of the
    residual energy per atom; all three are buffers saved with the model and set by
    :meth:`fit_reference_energies` (identity defaults: zero references, scale 1, shift 0).

    Args:
        in_dim: width of per-atom features.
        hidden_dim: width of the hidden layer.
        max_z: largest atomic number.
    """

    def __init__(self, in_dim: int, hidden_dim: int = 64, max_z: int = MAX_Z):
        super().__init__()
        self.max_z = max_z
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, 1))
        self.register_buffer("ref", torch.zeros(max_z + 1))
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("shift", torch.zeros(()))

    def atom_energies(self, features: Tensor, z: Tensor) -> Tensor:
        """Per-atom energies [N] from features [N, in_dim] and atomic numbers [N]."""
        return self.scale * self.mlp(features).squeeze(-1) + self.shift + self.ref[z]

    def forward(self, features: Tensor, data) -> Tensor:
        """Total energies [B] of the graphs in ``data`` from per-atom features [N, in_dim]."""
        num_graphs = int(getattr(data, "num_graphs", 1) or 1)
        per_atom = self.atom_energies(features, data.z)  # [N]
        return scatter(per_atom, graph_index(data), dim=0, dim_size=num_graphs, reduce="sum")

    @torch.no_grad()
    def fit_reference_energies(
        self,
        z_list_or_counts: Sequence | Tensor | np.ndarray,
        energies: Sequence[float] | Tensor,
        normalise: bool = True,
    ) -> Tensor:
        """Least-squares per-element reference energies, and optionally the residual's per-atom mean and std.

        Args:
            z_list_or_counts: the training structures (anything
                :func:`contrast.data.composition.element_counts` reads: atomic-number arrays, graphs,
                ``ase.Atoms``, pymatgen structures), or their count matrix [B, max_z + 1] in that function's
                convention (column ``Z`` counts element ``Z``, as in ``ref``).
            energies: total energies [B].
            normalise: also set ``shift``/``scale`` to the mean/std of the residual energy per atom.

        Returns:
            The fitted references [max_z + 1] (zero for elements absent from the training set).

        Raises:
            ValueError: a structure with no atoms or an atomic number outside 1..max_z (naming the entry), a
                count matrix of the wrong width, or a number of energies unlike that of structures.
        """
        if isinstance(z_list_or_counts, (Tensor, np.ndarray)) and np.ndim(z_list_or_counts) == 2:
            counts = np.asarray(torch.as_tensor(z_list_or_counts).detach().cpu(), dtype=np.float64)
            if counts.shape[1] != self.max_z + 1:
                raise ValueError(
                    f"count matrix has {counts.shape[1]} columns, expected max_z + 1 = {self.max_z + 1}"
                )
        else:
            counts = element_counts(z_list_or_counts, max_z=self.max_z)  # [B, max_z + 1]
        target = np.asarray(torch.as_tensor(energies).detach().cpu(), dtype=np.float64).reshape(-1)
        if len(target) != len(counts):
            raise ValueError(f"{len(counts)} structures but {len(target)} energies")
        present = counts.sum(axis=0) > 0
        ref = np.zeros(self.max_z + 1)
        ref[present] = np.linalg.lstsq(counts[:, present], target, rcond=None)[0]
        self.ref.copy_(torch.from_numpy(ref))
        if normalise:
            residual = (target - counts @ ref) / counts.sum(axis=1)  # [B] eV/atom
            std = float(residual.std()) if len(residual) > 1 else 0.0
            self.shift.fill_(float(residual.mean()))
            self.scale.fill_(std if std > 1e-12 else 1.0)
        return self.ref.clone()


class EnergyModel(nn.Module):
    """An encoder and an energy head: total energies [B], extensive in the number of atoms.

    Args:
        encoder: any :class:`CrystalEncoder`.
        head: per-atom energy head on the encoder's features.
    """

    def __init__(self, encoder: CrystalEncoder, head: EnergyHead):
        super().__init__()
        self.encoder = encoder
        self.head = head

    @property
    def cutoff(self) -> float:
        return self.encoder.cutoff

    def forward(self, data, pos: Tensor | None = None, cell: Tensor | None = None) -> Tensor:
        """Energies [B]; ``pos`` [N, 3] and ``cell`` [B, 3, 3] override the data's own (for autograd)."""
        features = self.encoder(data, pos=pos, cell=cell)  # [N, D]
        return self.head(features, data)
