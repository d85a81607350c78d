"""Energy conservation of a trained potential in NVE molecular dynamics (velocity Verlet, ASE).

    python benchmarks/nve_drift.py --checkpoint runs/mlearn_Si/checkpoints/last.ckpt \
        --data ../shared/data/mlearn_Si_train.extxyz.gz [--frame 0] [--temperature 300] [--steps 2000]

Starts from one frame of ``--data`` (by default the first of the run's validation part when the checkpoint's
run directory has a ``splits.json``, else frame 0), draws Maxwell-Boltzmann velocities at ``--temperature``
(seeded), integrates ``--steps`` steps of ``--dt`` fs with the model's forces, and reports the total energy
per atom: its linear drift (meV/atom/ps, the slope of a least-squares line), its spread (max - min, meV/atom)
and the same at half the time step, so that integration error (shrinking as dt^2) can be told from forces that
do not conserve energy (a drift that does not shrink). Prints one JSON line; ``--json PATH`` also writes it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def start_frame(data: Path, checkpoint: Path, frame: int | None):
    """The starting structure: ``frame`` of ``data``, else the first validation frame of its run."""
    import ase.io

    from contrast.data.splits import load_split

    if frame is None:
        splits = checkpoint.resolve().parent.parent / "splits.json"
        frame = load_split(splits)["val"][0] if splits.exists() else 0
    atoms = ase.io.read(str(data), index=int(frame))
    atoms.calc = None
    return atoms, int(frame)


def run_nve(atoms, calc, temperature: float, steps: int, dt_fs: float, seed: int) -> dict:
    """Velocity Verlet from Maxwell-Boltzmann velocities: total energy per atom [steps + 1] and wall time."""
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
    from ase.md.verlet import VelocityVerlet

    atoms = atoms.copy()
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(seed))
    Stationary(atoms)
    atoms.calc = calc
    dynamics = VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    energies, temperatures = [atoms.get_total_energy()], [atoms.get_temperature()]

    def record():
        energies.append(atoms.get_total_energy())
        temperatures.append(atoms.get_temperature())

    dynamics.attach(record, interval=1)
    started = time.perf_counter()
    dynamics.run(steps)
    return {
        "energy_per_atom": np.asarray(energies) / len(atoms),
        "mean_temperature_K": float(np.mean(temperatures)),
        "wall_s": time.perf_counter() - started,
    }


def drift_and_spread(energy_per_atom: np.ndarray, dt_fs: float) -> tuple[float, float]:
    """Linear drift in meV/atom/ps and spread (max - min) in meV/atom of a total-energy trace."""
    times_ps = np.arange(len(energy_per_atom)) * dt_fs / 1000.0
    slope = np.polyfit(times_ps, energy_per_atom, 1)[0]  # eV/atom/ps
    return float(slope * 1000.0), float((energy_per_atom.max() - energy_per_atom.min()) * 1000.0)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--frame", type=int, default=None)
    parser.add_argument("--temperature", type=float, default=300.0)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--dt", type=float, default=1.0, help="time step, fs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    import contrast

    calc = contrast.load_calculator(args.checkpoint)
    atoms, frame = start_frame(args.data, args.checkpoint, args.frame)
    result = {
        "checkpoint": str(args.checkpoint),
        "data": str(args.data),
        "frame": frame,
        "atoms": len(atoms),
        "temperature_K": args.temperature,
        "seed": args.seed,
    }
    for label, dt, steps in (("dt", args.dt, args.steps), ("half_dt", args.dt / 2, 2 * args.steps)):
        run = run_nve(atoms, calc, args.temperature, steps, dt, args.seed)
        drift, spread = drift_and_spread(run["energy_per_atom"], dt)
        result[label] = {
            "dt_fs": dt,
            "steps": steps,
            "time_ps": steps * dt / 1000.0,
            "drift_meV_per_atom_per_ps": drift,
            "spread_meV_per_atom": spread,
            "mean_temperature_K": run["mean_temperature_K"],
            "wall_s": run["wall_s"],
        }
    print(json.dumps(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
