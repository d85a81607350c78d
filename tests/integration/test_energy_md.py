"""A trained EMT energy model drives ASE: a fresh-process checkpoint load, relaxation, conservative NVE MD."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from ase.optimize import FIRE

import contrast

TINY_ENERGY = [
    "task=energy",
    "experiment=smoke",
    "logger=none",
    "trainer.max_epochs=3",
    "data.max_structures=64",
]


@pytest.fixture(scope="module")
def energy_checkpoint(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("energy-run")
    summary = contrast.run_training(TINY_ENERGY, run_dir=run_dir)
    assert "test/force_mae" in summary["test"]
    return run_dir / "checkpoints" / "last.ckpt"


def _md_energies(calc, timestep_fs: float, steps: int) -> np.ndarray:
    atoms = bulk("Cu", "fcc", a=3.65, cubic=True) * (2, 1, 1)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    atoms.calc = calc
    dynamics = VelocityVerlet(atoms, timestep=timestep_fs * units.fs)
    energies = [atoms.get_total_energy()]
    dynamics.attach(lambda: energies.append(atoms.get_total_energy()), interval=1)
    dynamics.run(steps)
    return np.asarray(energies) / len(atoms)


@pytest.mark.slow
def test_nve_conserves_energy(energy_checkpoint):
    """Velocity Verlet is symplectic: with conservative forces (F = -dE/dx exactly) the total energy only
    oscillates, with an amplitude that shrinks as dt^2, and has no secular drift. Non-conservative forces
    would give a drift that does not shrink with dt."""
    calc = contrast.load_calculator(energy_checkpoint)
    coarse = _md_energies(calc, 2.0, 1000)
    fine = _md_energies(calc, 1.0, 2000)
    spread_coarse = coarse.max() - coarse.min()
    spread_fine = fine.max() - fine.min()
    drift = abs(np.polyfit(np.arange(len(coarse)), coarse, 1)[0]) * len(coarse)  # eV/atom over the run
    print(
        f"NVE 1000 x 2 fs: spread {spread_coarse:.2e} eV/atom, linear drift {drift:.2e} eV/atom; "
        f"2000 x 1 fs: spread {spread_fine:.2e} eV/atom"
    )
    # The fluctuation stays far below the kinetic energy per atom at 300 K (3/2 kT = 39 meV), and the secular
    # drift over 2 ps is below 0.05% of it (measured: spread 8e-5 and drift 1e-6 eV/atom).
    assert spread_coarse < 1e-3
    assert drift < 2e-5
    # Integration error, not lost conservation: a halved dt shrinks the spread (measured 0.48x, ideal 0.25x).
    assert spread_fine < 0.7 * spread_coarse


@pytest.mark.slow
def test_relaxation_lowers_energy_and_forces(energy_checkpoint):
    atoms = bulk("Cu", "fcc", a=3.65, cubic=True)
    atoms.rattle(0.08, seed=2)
    atoms.calc = contrast.load_calculator(energy_checkpoint)
    start, start_force = atoms.get_potential_energy(), np.abs(atoms.get_forces()).max()
    # FIRE, not BFGS: on this 3-epoch model's landscape BFGS's Hessian model stalls at fmax ~0.2 eV/Å while
    # forces match finite differences to 3e-5 eV/Å; FIRE needs only the forces and reaches 0.01.
    FIRE(atoms, logfile=None).run(fmax=0.01, steps=1000)
    assert atoms.get_potential_energy() < start
    assert np.abs(atoms.get_forces()).max() < min(0.01 + 1e-9, start_force)


@pytest.mark.slow
def test_checkpoint_loads_in_a_fresh_process(energy_checkpoint, tmp_path):
    """Same energies and embeddings in a new interpreter, from another working directory, without conf/."""
    atoms = bulk("Cu", "fcc", a=3.65, cubic=True)
    atoms.rattle(0.05, seed=4)
    calc = contrast.load_calculator(energy_checkpoint)
    expected = calc.get_potential_energy(atoms)
    expected_embedding = contrast.embed(contrast.load_encoder(energy_checkpoint), [atoms])[0, :3].tolist()
    script = (
        "import contrast, sys\n"
        "from ase.build import bulk\n"
        "atoms = bulk('Cu', 'fcc', a=3.65, cubic=True); atoms.rattle(0.05, seed=4)\n"
        f"calc = contrast.load_calculator({str(energy_checkpoint)!r})\n"
        "print(repr(calc.get_potential_energy(atoms)))\n"
        f"enc = contrast.load_encoder({str(energy_checkpoint)!r})\n"
        "print(contrast.embed(enc, [atoms])[0, :3].tolist())\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    energy_line, embedding_line = result.stdout.strip().splitlines()[-2:]
    assert float(energy_line) == pytest.approx(expected, rel=1e-12)
    assert np.allclose(json.loads(embedding_line), expected_embedding, rtol=1e-6)
