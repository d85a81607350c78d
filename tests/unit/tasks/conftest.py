"""Shared pieces of the energy-task tests: a tiny SchNet energy task and EMT Cu cells with targets."""

from __future__ import annotations

import pytest

from contrast.data.datamodule import CrystalDataModule
from contrast.data.io.emt import emt_structures
from contrast.tasks.energy import EnergyTask

TINY_SCHNET = {
    "_target_": "contrast.nn.schnet.SchNet",
    "hidden_dim": 8,
    "num_layers": 1,
    "cutoff": 4.0,
    "num_rbf": 8,
}
ADAMW = {"_target_": "torch.optim.AdamW", "lr": 1e-3}


@pytest.fixture
def tiny_energy_task():
    """``tiny_energy_task(**options) -> EnergyTask`` on a one-layer SchNet of width 8 at 4 Å, AdamW 1e-3."""
    return lambda **options: EnergyTask(encoder=TINY_SCHNET, optimizer=ADAMW, **options)


@pytest.fixture
def emt_cu_energy_data(tmp_path):
    """``emt_cu_energy_data(n, fractions, batch_size) -> CrystalDataModule``: ``n`` EMT Cu cells with energies
    and forces, graphs at 4 Å cached under the test's temporary folder."""

    def make(n: int, fractions: tuple[float, float, float], batch_size: int) -> CrystalDataModule:
        return CrystalDataModule(
            source=emt_structures(n, elements=["Cu"]),
            cutoff=4.0,
            targets=["energy", "forces"],
            batch_size=batch_size,
            fractions=fractions,
            cache_dir=tmp_path,
        )

    return make
