"""Where the time of one interatomic-potential training step goes: energy, forces with ``create_graph`` and
the backward pass of an energy + force loss, as ``experiment=mlearn`` trains (PaiNN 64 x 3 at 5 Å, batch 4).

    OMP_NUM_THREADS=1 python benchmarks/profile_energy_step.py \
        --data ../shared/data/mlearn_Si_train.extxyz.gz \
        [--first 69] [--batch-size 4] [--steps 10] [--rows 15]

Times ``--steps`` steps after three warm-up steps (seconds per step, atoms and edges of the batch), then runs
five more under ``torch.profiler`` and prints the operators by their own CPU time. The profiler slows the
steps down; read its table for shares, the plain timing for speed.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch_geometric.data import Batch


def batch_of(path: str, first: int, size: int, cutoff: float) -> Batch:
    """``size`` consecutive frames of ``path`` from ``first``, as one batch of crystal graphs."""
    from contrast.data.io.readers import read_file
    from contrast.graph.convert import structure_to_graph

    entries = read_file(path)[first : first + size]
    return Batch.from_data_list([structure_to_graph(entry.structure, cutoff) for entry in entries])


def main(argv: list[str] | None = None) -> None:
    from contrast.nn.forces import energy_forces_stress
    from contrast.nn.heads import EnergyHead, EnergyModel
    from contrast.nn.painn import PaiNN

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--first", type=int, default=69, help="first frame of the batch")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rows", type=int, default=15)
    parser.add_argument("--hidden-dim", type=int, default=64)
    parser.add_argument("--num-layers", type=int, default=3)
    parser.add_argument("--cutoff", type=float, default=5.0)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    batch = batch_of(args.data, args.first, args.batch_size, args.cutoff)
    model = EnergyModel(PaiNN(hidden_dim=args.hidden_dim, num_layers=args.num_layers, cutoff=args.cutoff),
                        EnergyHead(args.hidden_dim))  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)

    def step() -> None:
        out = energy_forces_stress(model, batch, compute_forces=True, training=True)
        loss = out["energy"].pow(2).mean() + out["forces"].pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = (time.perf_counter() - start) / args.steps
    print(
        f"{seconds:.3f} s per step; {batch.num_nodes} atoms, {batch.edge_index.shape[1]} edges, "
        f"{torch.get_num_threads()} thread(s)"
    )
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(5):
            step()
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
