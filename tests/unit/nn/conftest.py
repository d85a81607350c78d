"""Small float64 encoders and structures shared by the nn tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from contrast.nn.cgcnn import CGCNN
from contrast.nn.heads import EnergyHead, EnergyModel
from contrast.nn.painn import PaiNN
from contrast.nn.schnet import SchNet

CUTOFF = 4.0
ENCODERS = {"cgcnn": CGCNN, "schnet": SchNet, "painn": PaiNN}


def make_encoder(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return ENCODERS[name](hidden_dim=16, num_layers=2, cutoff=CUTOFF, num_rbf=8, max_z=40).double().eval()


@pytest.fixture(scope="session")
def cutoff() -> float:
    return CUTOFF


@pytest.fixture(scope="session")
def build_encoder():
    """``build_encoder(name)``: a fresh, seeded, small float64 encoder."""
    return make_encoder


@pytest.fixture(scope="session", params=sorted(ENCODERS))
def encoder(request):
    return make_encoder(request.param)


@pytest.fixture(scope="session")
def energy_model(encoder):
    torch.manual_seed(1)
    head = EnergyHead(encoder.hidden_dim, hidden_dim=16, max_z=40).double()
    head.ref[29] = -3.0  # non-zero references and normalisation exercise the full per-atom formula
    head.ref[13] = -1.5
    head.scale.fill_(0.7)
    head.shift.fill_(0.1)
    return EnergyModel(encoder, head).eval()


@pytest.fixture(scope="session")
def alloy() -> Atoms:
    """A rattled, sheared 4-atom Cu3Al cell with a non-orthogonal lattice."""
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True)
    atoms.numbers[1] = 13
    atoms.set_cell(atoms.cell[:] @ np.array([[1.0, 0.05, 0.0], [0.02, 0.97, 0.03], [0.0, -0.04, 1.02]]), True)
    atoms.rattle(0.08, seed=3)
    return atoms


@pytest.fixture(scope="session")
def primitive() -> Atoms:
    """A 2-atom rattled primitive cell (cell edges shorter than the cutoff, so many images are neighbours)."""
    atoms = bulk("Cu", "fcc", a=3.6) * (2, 1, 1)
    atoms.numbers[0] = 13
    atoms.rattle(0.05, seed=4)
    return atoms
