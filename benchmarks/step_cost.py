"""Cost of an encoder step: energy, forces at inference, and training with and without a force loss.

Every figure is measured for each encoder on the same batches in one run, and reported as a ratio to a
baseline from the same run:

- ``forces_inference_ratio``: energy + forces (autograd) / energy forward without grad (goal <= 2.5).
- ``force_training_ratio``: training step with energy + force loss (double backward) / energy-only step
  (goal <= 3.5).
- ``per_atom_time_spread``: max / min time per atom of energy + forces over supercells of about 1k, 4k and
  16k atoms (goal <= 1.5), with peak memory per atom.
- ``contrastive_ratio``: contrastive two-view training step (default augmentations, projector, InfoNCE) /
  energy-only training step on the same structures (goal <= 2.2).
- ``loader_rate_ratio``: views produced per second by the DataLoader with the default worker count /
  structures consumed per second by the contrastive training step (goal >= 2).

Usage::

    python benchmarks/step_cost.py --encoders painn schnet cgcnn --batch-size 16 --repeats 5 --json out.json
    python benchmarks/step_cost.py --device cuda --dtype float32

Add a figure by writing ``measure_<name>(model, context, args) -> dict`` and listing it in ``MEASUREMENTS``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from ase.build import bulk
from torch_geometric.data import Batch

from contrast.data.io.emt import emt_structures
from contrast.graph.convert import structure_to_graph, structures_to_graphs
from contrast.nn.base import num_parameters
from contrast.nn.cgcnn import CGCNN
from contrast.nn.forces import energy_forces_stress
from contrast.nn.heads import EnergyHead, EnergyModel
from contrast.nn.painn import PaiNN
from contrast.nn.runtime import tune_cpu_allocator
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
    graphs: list  # the same structures as CPU graphs without labels (input of the view pipelines)


def to_device(data, device: torch.device, dtype: torch.dtype):
    for key in ("pos", "cell", "cell_shift", "energy", "forces"):
        if key in data:
            data[key] = data[key].to(dtype)
    return data.to(device)


def make_context(args: argparse.Namespace) -> Context:
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    structures = emt_structures(args.batch_size * args.num_batches, seed=0)
    graphs = structures_to_graphs(structures, cutoff=CUTOFF)
    unlabelled = [graph.clone() for graph in graphs]
    for graph, atoms in zip(graphs, structures):
        graph.energy = torch.tensor([atoms.get_potential_energy()])
        graph.forces = torch.from_numpy(atoms.get_forces())
    chunks = [graphs[k : k + args.batch_size] for k in range(0, len(graphs), args.batch_size)]
    batches = [to_device(Batch.from_data_list(c), device, dtype) for c in chunks]
    return Context(batches, device, dtype, unlabelled)


def _seconds(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def timed(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Median wall time of ``fn`` in seconds, after ``warmup`` untimed calls.

    More than one warm-up call: the allocator and the thread pool settle over the first calls of a process.
    """
    for _ in range(warmup):
        fn()
    return statistics.median(_seconds(fn, device) for _ in range(repeats))


def timed_pair(
    fn: Callable[[], object], baseline: Callable[[], object], device: torch.device, repeats: int
) -> tuple[float, float]:
    """Median wall times of ``fn`` and of its ``baseline``, timed alternately so that drifts of a shared
    machine hit both alike, after two warm-up calls of each."""
    for _ in range(2):
        fn()
        baseline()
    times = [(_seconds(fn, device), _seconds(baseline, device)) for _ in range(repeats)]
    return statistics.median(t for t, _ in times), statistics.median(t for _, t in times)


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

    t_forces, t_energy = timed_pair(
        over_batches(forces, ctx.batches), over_batches(energy, ctx.batches), ctx.device, args.repeats
    )
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

    t_force, t_energy = timed_pair(
        over_batches(force_step, ctx.batches),
        over_batches(energy_step, ctx.batches),
        ctx.device,
        args.repeats,
    )
    return {"train_energy_s": t_energy, "train_force_s": t_force, "force_training_ratio": t_force / t_energy}


def supercell_batch(n: int, device: torch.device, dtype: torch.dtype) -> tuple[Batch, int]:
    """A rattled n x n x n supercell of the 4-atom cubic Cu cell as a one-graph batch, and its atom count."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (n, n, n)
    atoms.rattle(0.05, seed=0)
    graph = structure_to_graph(atoms, cutoff=CUTOFF)
    return to_device(Batch.from_data_list([graph]), device, dtype), len(atoms)


def _memory_kb(field: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, in kB.

    Not ``ru_maxrss``: Linux keeps that across ``execve``, so a spawned child would report its parent's peak.
    """
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def cpu_peak_kb(name: str, n: int, dtype: str, tune: bool) -> float:
    """Peak resident memory added by one energy + forces evaluation of the n-supercell, in kB.

    Runs in a fresh process (the caller starts one per size): a process's peak RSS only grows, so within one
    process every size after the largest would report the largest one's peak.
    """
    if tune:
        tune_cpu_allocator()
    torch.manual_seed(0)
    encoder = ENCODERS[name]()
    model = EnergyModel(encoder, EnergyHead(encoder.hidden_dim)).to(getattr(torch, dtype))
    data, _ = supercell_batch(n, torch.device("cpu"), getattr(torch, dtype))
    try:  # reset the peak to the present, so the set-up above does not count
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass
    before = _memory_kb("VmRSS")
    energy_forces_stress(model, data)
    return _memory_kb("VmHWM") - before


def measure_scaling(model: EnergyModel, ctx: Context, args: argparse.Namespace) -> dict:
    """Time per atom in this process; peak memory per atom from the CUDA allocator, or on the CPU from a fresh
    process per size."""
    import multiprocessing

    name = next(key for key, cls in ENCODERS.items() if isinstance(model.encoder, cls))
    out, per_atom = {}, []
    for label, n in SUPERCELLS.items():
        if label not in args.sizes:
            continue
        data, n_atoms = supercell_batch(n, ctx.device, ctx.dtype)
        if ctx.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(ctx.device)
        seconds = timed(
            lambda data=data: energy_forces_stress(model, data), ctx.device, max(1, args.repeats // 2)
        )
        per_atom.append(seconds / n_atoms)
        out[f"us_per_atom_{label}"] = 1e6 * seconds / n_atoms
        if ctx.device.type == "cuda":
            peak_kb = torch.cuda.max_memory_allocated(ctx.device) / 1024
        else:
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                peak_kb = pool.apply(cpu_peak_kb, (name, n, args.dtype, not args.no_tune_allocator))
        out[f"peak_kb_per_atom_{label}"] = peak_kb / n_atoms
    if per_atom:
        out["per_atom_time_spread"] = max(per_atom) / min(per_atom)
        peaks = [out[f"peak_kb_per_atom_{label}"] for label in SUPERCELLS if label in args.sizes]
        out["per_atom_memory_spread"] = max(peaks) / min(peaks)
    return out


def default_views(cutoff: float):
    """The default two-view augmentation of ``conf/augment/default.yaml``."""
    from pathlib import Path

    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    root = Path(__file__).resolve().parents[1]
    config = OmegaConf.merge(
        {"seed": 0, "data": {"cutoff": cutoff}},
        {"augment": OmegaConf.load(root / "conf" / "augment" / "default.yaml")},
    )
    return instantiate(config.augment)


def _view_batches(ctx: Context, args: argparse.Namespace) -> list[tuple[Batch, Batch]]:
    views = default_views(CUTOFF).wrap(ctx.graphs)
    pairs = [views[i] for i in range(len(views))]
    chunks = [pairs[k : k + args.batch_size] for k in range(0, len(pairs), args.batch_size)]
    return [
        tuple(
            to_device(Batch.from_data_list([pair[v] for pair in chunk]), ctx.device, ctx.dtype)
            for v in (0, 1)
        )
        for chunk in chunks
    ]


def contrastive_parts(model: EnergyModel, ctx: Context):
    from contrast.losses import InfoNCELoss
    from contrast.nn.heads import ProjectionHead

    projector = ProjectionHead(model.encoder.embedding_dim).to(ctx.device, ctx.dtype)
    parameters = list(model.encoder.parameters()) + list(projector.parameters())
    return projector, InfoNCELoss(temperature=0.1), torch.optim.Adam(parameters, lr=1e-4)


def measure_contrastive(model: EnergyModel, ctx: Context, args: argparse.Namespace) -> dict:
    """Two-view contrastive step against the energy-only step, on the same structures."""
    view_batches = _view_batches(ctx, args)
    projector, loss_fn, optimizer = contrastive_parts(model, ctx)

    def contrastive_step(views):
        optimizer.zero_grad(set_to_none=True)
        view_a, view_b = views
        loss = loss_fn(projector(model.encoder.embed(view_a)), projector(model.encoder.embed(view_b)))
        loss.backward()
        optimizer.step()

    energy_optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def energy_step(batch):
        energy_optimizer.zero_grad(set_to_none=True)
        ((model(batch) - batch.energy) ** 2).mean().backward()
        energy_optimizer.step()

    t_contrastive, t_energy = timed_pair(
        over_batches(contrastive_step, view_batches),
        over_batches(energy_step, ctx.batches),
        ctx.device,
        args.repeats,
    )
    consumed = sum(a.num_graphs for a, _ in view_batches) / t_contrastive
    # Views differ in size from their structures (supercells, removed sites): the same ratio per edge.
    view_edges = sum(a.edge_index.shape[1] + b.edge_index.shape[1] for a, b in view_batches)
    edges = sum(batch.edge_index.shape[1] for batch in ctx.batches)
    return {
        "train_contrastive_s": t_contrastive,
        "contrastive_ratio": t_contrastive / t_energy,
        "view_edges_over_structure_edges": view_edges / edges,
        "contrastive_ratio_per_edge": (t_contrastive / view_edges) / (t_energy / edges),
        **measure_loader(consumed, ctx, args),
    }


def view_loader(ctx: Context, args: argparse.Namespace, **kwargs):
    """A DataLoader of default two-view pairs built as ``CrystalDataModule`` builds its loaders."""
    from torch.utils.data import DataLoader

    from contrast.data.datamodule import WorkerBatchCollater

    dataset = default_views(CUTOFF).wrap(ctx.graphs * args.loader_passes)
    return DataLoader(
        dataset,
        batch_size=args.batch_size,
        num_workers=args.workers,
        shuffle=True,
        collate_fn=WorkerBatchCollater(dataset),
        **kwargs,
    )


def measure_loader(consumed: float, ctx: Context, args: argparse.Namespace) -> dict:
    """Views per second from the DataLoader (default worker count) against the step's consumption rate."""
    batches = iter(view_loader(ctx, args))
    next(batches)  # steady state: worker start-up (a fresh interpreter importing torch) is left out
    start, produced = time.perf_counter(), 0
    for view_a, _ in batches:
        produced += view_a.num_graphs
    produced_per_s = produced / (time.perf_counter() - start)
    return {
        "produced_structures_per_s": produced_per_s,
        "consumed_structures_per_s": consumed,
        "loader_rate_ratio": produced_per_s / consumed,
    }


MEASUREMENTS: dict[str, Callable[[EnergyModel, Context, argparse.Namespace], dict]] = {
    "inference": measure_inference,
    "training": measure_training,
    "scaling": measure_scaling,
    "contrastive": measure_contrastive,
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
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (the default data config)")
    parser.add_argument("--loader-passes", type=int, default=4, help="passes over the structures when timing")
    parser.add_argument("--json", default=None, help="write {encoder: {figure: value}} here")
    parser.add_argument(
        "--no-tune-allocator",
        action="store_true",
        help="leave glibc malloc as it is (training and load_calculator tune it; see contrast/runtime.py)",
    )
    args = parser.parse_args()
    tuned = False if args.no_tune_allocator else tune_cpu_allocator()
    ctx = make_context(args)
    atoms = sum(int(b.num_nodes) for b in ctx.batches)
    threads = torch.get_num_threads()
    print(f"# {platform.node()} {args.device} {args.dtype} torch {torch.__version__} threads {threads}")
    print(f"# malloc tuned as in training runs: {tuned}")
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
