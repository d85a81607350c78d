"""Views per second: the per-item CPU views against the batched views on a device, in the same run.

Both paths make the two views of the same batches of structures with the same augmentation config:

- ``per_item``: what a DataLoader worker does (``TwoViews.wrap``: per-structure transforms and a vesin
  neighbour search per view, then PyG collation of the two view batches), here in one process;
- ``batched``: the per-item part of :class:`contrast.augment.batched.BatchedViews` (chemistry transforms and
  collation, still on the CPU), the transfer to ``--device``, then the geometric transforms and the neighbour
  search of the whole batch on the device. ``batched_device_only`` times the device part alone: in training
  the CPU part runs in the workers, overlapped with the step.

The ratio ``batched / per_item`` (structures per second) is printed as JSON; on a CPU it says what the torch
search costs against vesin, on a GPU how far the view supply outgrows the workers.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/device_views.py --batch-size 64 --repeats 5
    python benchmarks/device_views.py --device cuda --batch-size 256 --augment default
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch_geometric.data import Batch

import contrast
from contrast.augment.batched import BatchedViews

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "contrast" / "data" / "samples" / "mp_sample.extxyz.gz"


def two_views(name: str, cutoff: float):
    config = OmegaConf.merge(
        {"seed": 0, "data": {"cutoff": cutoff}},
        {"augment": OmegaConf.load(ROOT / "conf" / "augment" / f"{name}.yaml")},
    )
    return instantiate(config.augment)


def collate_pairs(items: list) -> list[Batch] | Batch:
    if isinstance(items[0], tuple):
        return [Batch.from_data_list([item[v] for item in items]) for v in (0, 1)]
    return Batch.from_data_list(items)


def to_device(batch, device: torch.device, dtype: torch.dtype):
    if isinstance(batch, list):
        return [to_device(b, device, dtype) for b in batch]
    batch = batch.to(device)
    batch.pos, batch.cell = batch.pos.to(dtype), batch.cell.to(dtype)
    return batch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(fn, structures: int, repeats: int, device: torch.device) -> float:
    """Structures per second of ``fn`` (best of ``repeats`` after one warm-up call)."""
    fn()
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return structures / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SAMPLE), help="any file contrast.load_dataset reads")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=2, help="batches per timed call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cutoff", type=float, default=5.0)
    parser.add_argument("--augment", default="structure_only", help="a conf/augment preset")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--max-pairs", type=int, default=None, help="candidates per chunk of the search")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)

    total = args.batch_size * args.batches
    data = contrast.load_dataset(
        args.data,
        cutoff=args.cutoff,
        store="structure",
        views=True,
        max_structures=total,
        cache_dir=args.cache_dir,
    )
    indices = list(range(min(total, len(data))))
    structures = len(indices)
    chunks = [indices[k : k + args.batch_size] for k in range(0, structures, args.batch_size)]

    per_item_views = two_views(args.augment, args.cutoff)
    options = {"max_pairs": args.max_pairs} if args.max_pairs else {}
    batched_views = BatchedViews.from_two_views(per_item_views, **options)
    per_item_set = per_item_views.wrap(data)
    batched_set = batched_views.wrap(data)

    def per_item():
        for chunk in chunks:
            collate_pairs([per_item_set[k] for k in chunk])

    def cpu_part():
        return [to_device(collate_pairs([batched_set[k] for k in chunk]), device, dtype) for chunk in chunks]

    def batched():
        for batch in cpu_part():
            batched_views(batch, batched_views.generator(batch, 0))

    ready = cpu_part()

    def device_only():
        for batch in ready:
            batched_views(batch, batched_views.generator(batch, 0))

    atoms = sum(data[k].num_nodes for k in indices)
    edges = sum(
        int(v.edge_index.shape[1]) for b in ready for v in batched_views(b, batched_views.generator(b, 0))
    )
    per_item_rate = rate(per_item, structures, args.repeats, device)
    batched_rate = rate(batched, structures, args.repeats, device)
    device_rate = rate(device_only, structures, args.repeats, device)
    result = {
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "augment": args.augment,
        "dtype": args.dtype,
        "structures": structures,
        "batch_size": args.batch_size,
        "mean_atoms": atoms / structures,
        "edges_per_structure_both_views": edges / structures,
        "per_item_structures_per_s": round(per_item_rate, 1),
        "batched_structures_per_s": round(batched_rate, 1),
        "batched_device_only_structures_per_s": round(device_rate, 1),
        "ratio_batched_over_per_item": round(batched_rate / per_item_rate, 3),
        "ratio_device_only_over_per_item": round(device_rate / per_item_rate, 3),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
