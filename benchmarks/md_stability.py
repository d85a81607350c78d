"""Stability of a trained potential beyond its test set: a hot NVT run (Langevin, ASE).

    python benchmarks/md_stability.py --checkpoint runs/mlearn_Si/checkpoints/last.ckpt \
        --data ../shared/data/mlearn_Si_train.extxyz.gz [--temperature 600] [--steps 2000] [--group AIMD-NVT]

Starts from one frame of ``--data`` (the first validation frame of the checkpoint's run when it has a
``splits.json``, else ``--frame``), runs ``--steps`` Langevin steps of ``--dt`` fs at ``--temperature`` with
the model's forces, and reports, from frames recorded every ``--every`` steps:

- whether the structure held together: the shortest interatomic distance seen (atoms closer than 1 Å have
  collapsed) and the atoms left without a neighbour within ``--rdf-max`` (atoms that flew off);
- the radial distribution function of the trajectory next to that of the reference frames of ``--data`` with
  the same number of atoms (and ``--group`` when given), and the L1 distance between the two (0 for the same
  g(r); 2 for g(r) that do not overlap at all);
- the mean temperature and the wall time.

Prints one JSON line; ``--json PATH`` also writes it, ``--plot PATH`` draws both g(r).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nve_drift import start_frame  # noqa: E402


def pair_distances(atoms, r_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Every periodic pair distance up to ``r_max`` (each pair once per direction) and, per atom, the
    distance to its nearest neighbour (inf without one)."""
    from contrast.graph.neighbours import NeighbourSearch

    edge_index, _, distance = NeighbourSearch(r_max)(atoms.get_positions(), atoms.cell[:])
    nearest = np.full(len(atoms), np.inf)
    np.minimum.at(nearest, edge_index[1], distance)
    return distance, nearest


def rdf(frames, r_max: float, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """The radial distribution function g(r) averaged over ``frames``: ``(bin centres [bins], g [bins])``."""
    edges = np.linspace(0.0, r_max, bins + 1)
    counts = np.zeros(bins)
    norm = 0.0
    for atoms in frames:
        distance, _ = pair_distances(atoms, r_max)
        counts += np.histogram(distance, edges)[0]
        density = len(atoms) / atoms.get_volume()
        norm += len(atoms) * density
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    return 0.5 * (edges[1:] + edges[:-1]), counts / (shell * norm)


def rdf_distance(g_a: np.ndarray, g_b: np.ndarray, r: np.ndarray) -> float:
    """L1 distance of two g(r) normalised to unit area over the bins (0: the same; 2: disjoint)."""
    weights = [g * r**2 for g in (g_a, g_b)]
    a, b = (w / w.sum() if w.sum() > 0 else w for w in weights)
    return float(np.abs(a - b).sum())


def run_nvt(atoms, calc, temperature: float, steps: int, dt_fs: float, every: int, seed: int) -> dict:
    """Langevin dynamics: frames every ``every`` steps, temperatures, wall time."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    atoms = atoms.copy()
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    atoms.calc = calc
    dynamics = Langevin(atoms, dt_fs * units.fs, temperature_K=temperature, friction=0.01 / units.fs, rng=rng)
    frames, temperatures = [], []

    def record():
        snapshot = atoms.copy()
        snapshot.calc = None
        frames.append(snapshot)
        temperatures.append(atoms.get_temperature())

    dynamics.attach(record, interval=every)
    started = time.perf_counter()
    dynamics.run(steps)
    return {"frames": frames, "temperatures": temperatures, "wall_s": time.perf_counter() - started}


def reference_frames(data: Path, n_atoms: int, group: str | None) -> list:
    import ase.io

    frames = [a for a in ase.io.read(str(data), index=":") if len(a) == n_atoms]
    if group is not None:
        frames = [a for a in frames if a.info.get("group") == group]
    return frames


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--frame", type=int, default=None)
    parser.add_argument("--group", default=None, help="reference frames of this group only (e.g. AIMD-NVT)")
    parser.add_argument("--temperature", type=float, default=600.0)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--dt", type=float, default=1.0, help="time step, fs")
    parser.add_argument("--every", type=int, default=20, help="steps between recorded frames")
    parser.add_argument("--rdf-max", type=float, default=5.0, help="Å")
    parser.add_argument("--bins", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args(argv)

    import contrast

    calc = contrast.load_calculator(args.checkpoint)
    atoms, frame = start_frame(args.data, args.checkpoint, args.frame)
    run = run_nvt(atoms, calc, args.temperature, args.steps, args.dt, args.every, args.seed)
    shortest, lonely = np.inf, 0
    for snapshot in run["frames"]:
        _, nearest = pair_distances(snapshot, args.rdf_max)
        shortest = min(shortest, float(nearest.min()))
        lonely = max(lonely, int(np.isinf(nearest).sum()))
    reference = reference_frames(args.data, len(atoms), args.group)
    r, g_run = rdf(run["frames"], args.rdf_max, args.bins)
    _, g_ref = rdf(reference, args.rdf_max, args.bins) if reference else (r, np.zeros_like(r))
    result = {
        "checkpoint": str(args.checkpoint),
        "data": str(args.data),
        "frame": frame,
        "atoms": len(atoms),
        "temperature_K": args.temperature,
        "steps": args.steps,
        "dt_fs": args.dt,
        "time_ps": args.steps * args.dt / 1000.0,
        "seed": args.seed,
        "mean_temperature_K": float(np.mean(run["temperatures"])),
        "shortest_distance_A": shortest,
        "atoms_without_neighbour": lonely,
        "held_together": bool(shortest > 1.0 and lonely == 0),
        "reference_frames": len(reference),
        "rdf_l1_distance": rdf_distance(g_run, g_ref, r) if reference else None,
        "wall_s": run["wall_s"],
    }
    print(json.dumps(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))
    if args.plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.4))
        ax.plot(r, g_ref, label=f"reference frames ({len(reference)})")
        ax.plot(r, g_run, label=f"NVT {args.temperature:.0f} K, {result['time_ps']:.1f} ps")
        ax.set_xlabel("r (Å)")
        ax.set_ylabel("g(r)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
    return result


if __name__ == "__main__":
    main()
