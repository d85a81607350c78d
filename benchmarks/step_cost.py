"""Cost of an encoder step: energy, forces at inference, and training with and without a force loss.

Every figure is measured for each encoder on the same batches in one run, and reported as a ratio to a
baseline from the same run:

- ``forces_inference_ratio``: energy + forces (autograd) / energy forward without grad (goal <= 2.5).
- ``force_training_ratio``: training step with energy + force loss (double backward) / energy-only step
  (goal <= 3.5).
- ``per_atom_time_spread``: max / min time per atom of energy + forces over supercells of about 1k, 4k and
  16k atoms (goal <= 1.5), with peak memory per atom.

Usage::

    python benchmarks/step_cost.py --encoders painn schnet cgcnn --batch-size 16 --repeats 5 --json out.json
    python benchmarks/step_cost.py --device cuda --dtype float32

Add a figure by writing ``measure_<name>(model, context, args) -> dict`` and listing it in ``MEASUREMENTS``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from ase.build import bulk
from torch_geometric.data import Batch

from contrast.data.emt import emt_structures
from contrast.data.graph import structure_to_graph, structures_to_graphs
from contrast.nn.base import num_parameters
from contrast.nn.cgcnn import CGCNN
from contrast.nn.forces import energy_forces_stress
from contrast.nn.heads import EnergyHead, EnergyModel
from contrast.nn.painn import PaiNN
from contrast.nn.schnet import SchNet

ENCODERS = {"painn": PaiNN, "schnet": SchNet, "cgcnn": CGCNN}
CUTOFF = 5.0
SUPERCELLS = {"1k": 6, "4k": 10, "16k": 16}  # repeats of the 4-atom cubic Cu cell: 864, 4000, 16384 atoms


@dataclass
class Context:
    """Inputs shared by every measurement: batches of the EMT dataset on the target device and dtype."""

    batches: list[Batch]
    device: torch.device
    dtype: torch.dtype


def to_device(data, device: torch.device, dtype: torch.dtype):
    for key in ("pos", "cell", "cell_shift", "energy", "forces"):
        if key in data:
            data[key] = data[key].to(dtype)
    return data.to(device)


def make_context(args: argparse.Namespace) -> Context:
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    structures = emt_structures(args.batch_size * args.num_batches, seed=0)
    graphs = structures_to_graphs(structures, cutoff=CUTOFF)
    for graph, atoms in zip(graphs, structures):
        graph.energy = torch.tensor([atoms.get_potential_energy()])
        graph.forces = torch.from_numpy(atoms.get_forces())
    chunks = [graphs[k : k + args.batch_size] for k in range(0, len(graphs), args.batch_size)]
    return Context([to_device(Batch.from_data_list(c), device, dtype) for c in chunks], device, dtype)


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median wall time of ``fn`` in seconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def over_batches(step: Callable[[Batch], object], batches: list[Batch]) -> Callable[[], None]:
    def run() -> None:
        for batch in batches:
            step(batch)

    return run


def measure_inference(model: EnergyModel, ctx: Context, args: argparse.Namespace) -> dict:
    def energy(batch):
        with torch.no_grad():
            return model(batch)

    def forces(batch):
        return energy_forces_stress(model, batch, compute_forces=True)

    t_energy = timed(over_batches(energy, ctx.batches), ctx.device, args.repeats)
    t_forces = timed(over_batches(forces, ctx.batches), ctx.device, args.repeats)
    return {"energy_s": t_energy, "forces_s": t_forces, "forces_inference_ratio": t_forces / t_energy}


def measure_training(model: EnergyModel, ctx: Context, args: argparse.Namespace) -> dict:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def energy_step(batch):
        optimizer.zero_grad(set_to_none=True)
        loss = ((model(batch) - batch.energy) ** 2).mean()
        loss.backward()
        optimizer.step()

    def force_step(batch):
        optimizer.zero_grad(set_to_none=True)
        out = energy_forces_stress(model, batch, compute_forces=True, training=True)
        loss = ((out["energy"] - batch.energy) ** 2).mean() + ((out["forces"] - batch.forces) ** 2).mean()
        loss.backward()
        optimizer.step()

    t_energy = timed(over_batches(energy_step, ctx.batches), ctx.device, args.repeats)
    t_force = timed(over_batches(force_step, ctx.batches), ctx.device, args.repeats)
    return {"train_energy_s": t_energy, "train_force_s": t_force, "force_training_ratio": t_force / t_energy}


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory since the last reset: allocator peak on CUDA, process peak RSS on CPU (monotonic)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_scaling(model: EnergyModel, ctx: Context, args: argparse.Namespace) -> dict:
    out, per_atom = {}, []
    for label, n in SUPERCELLS.items():
        if label not in args.sizes:
            continue
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (n, n, n)
        atoms.rattle(0.05, seed=0)
        data = to_device(
            Batch.from_data_list([structure_to_graph(atoms, cutoff=CUTOFF)]), ctx.device, ctx.dtype
        )
        if ctx.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(ctx.device)
        seconds = timed(
            lambda data=data: energy_forces_stress(model, data), ctx.device, max(1, args.repeats // 2)
        )
        per_atom.append(seconds / len(atoms))
        out[f"us_per_atom_{label}"] = 1e6 * seconds / len(atoms)
        out[f"peak_kb_per_atom_{label}"] = 1024 * peak_memory_mb(ctx.device) / len(atoms)
    if per_atom:
        out["per_atom_time_spread"] = max(per_atom) / min(per_atom)
    return out


MEASUREMENTS: dict[str, Callable[[EnergyModel, Context, argparse.Namespace], dict]] = {
    "inference": measure_inference,
    "training": measure_training,
    "scaling": measure_scaling,
}


def build_model(name: str, ctx: Context) -> EnergyModel:
    torch.manual_seed(0)
    encoder = ENCODERS[name]()  # default size: hidden 64, 3 layers, cutoff 5 Å
    return EnergyModel(encoder, EnergyHead(encoder.hidden_dim)).to(ctx.device, ctx.dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS), choices=list(ENCODERS))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-batches", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--sizes", nargs="*", default=list(SUPERCELLS), choices=list(SUPERCELLS))
    parser.add_argument("--measurements", nargs="+", default=list(MEASUREMENTS), choices=list(MEASUREMENTS))
    parser.add_argument("--json", default=None, help="write {encoder: {figure: value}} here")
    args = parser.parse_args()
    ctx = make_context(args)
    atoms = sum(int(b.num_nodes) for b in ctx.batches)
    threads = torch.get_num_threads()
    print(f"# {platform.node()} {args.device} {args.dtype} torch {torch.__version__} threads {threads}")
    print(f"# {len(ctx.batches)} EMT batches of {args.batch_size} graphs, {atoms} atoms in all")
    results = {}
    for name in args.encoders:
        model = build_model(name, ctx)
        results[name] = {"parameters": num_parameters(model.encoder)}
        for key in args.measurements:
            results[name].update(MEASUREMENTS[key](model, ctx, args))
        print(
            name,
            json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in results[name].items()}),
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
