"""Contrastive pretraining on one accelerator: throughput, whether the DataLoader keeps up, and the speed-up
of bf16 autocast and ``torch.compile`` against eager fp32, all measured in one run on the same batches.

Usage::

    python benchmarks/gpu_speedups.py --device cuda --encoders painn schnet cgcnn --json out.json

Figures per encoder:

- ``contrastive_structures_per_s``: eager fp32 two-view steps on pre-built view batches (the step alone).
- ``loader_structures_per_s``: view pairs produced by the DataLoader with ``--workers`` workers, alone.
- ``end_to_end_structures_per_s`` and ``loader_wait_fraction``: the DataLoader feeding the training step;
  the fraction of wall time spent waiting for the next batch.
- ``bf16_speedup``, ``compile_speedup``: eager fp32 step time / bf16-autocast or compiled step time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_cost import (  # noqa: E402
    ENCODERS,
    Context,
    _view_batches,
    build_model,
    contrastive_parts,
    make_context,
    over_batches,
    timed,
    to_device,
    view_loader,
)


def contrastive_step_fn(model, ctx: Context, autocast: bool = False, compile_encoder: bool = False):
    """One optimiser step of the two-view contrastive loss, optionally under bf16 autocast or compiled."""
    projector, loss_fn, optimizer = contrastive_parts(model, ctx)
    embed = model.encoder.embed
    if compile_encoder:
        embed = torch.compile(model.encoder.embed, dynamic=True)

    def step(views):
        optimizer.zero_grad(set_to_none=True)
        view_a, view_b = views
        with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=autocast):
            z_a, z_b = projector(embed(view_a)), projector(embed(view_b))
        loss = loss_fn(z_a.float(), z_b.float())
        loss.backward()
        optimizer.step()

    return step


def end_to_end(model, ctx: Context, args) -> dict:
    step = contrastive_step_fn(model, ctx)
    loader = view_loader(ctx, args, pin_memory=True)
    waited, produced = 0.0, 0
    iterator = iter(loader)
    first_a, first_b = next(iterator)  # steady state: worker start-up is left out
    step((to_device(first_a, ctx.device, ctx.dtype), to_device(first_b, ctx.device, ctx.dtype)))
    if ctx.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    while True:
        ask = time.perf_counter()
        try:
            view_a, view_b = next(iterator)
        except StopIteration:
            break
        waited += time.perf_counter() - ask
        step((to_device(view_a, ctx.device, ctx.dtype), to_device(view_b, ctx.device, ctx.dtype)))
        produced += view_a.num_graphs
    if ctx.device.type == "cuda":
        torch.cuda.synchronize()
    total = time.perf_counter() - start
    return {"end_to_end_structures_per_s": produced / total, "loader_wait_fraction": waited / total}


def loader_alone(ctx: Context, args) -> float:
    batches = iter(view_loader(ctx, args))
    next(batches)  # steady state: worker start-up is left out
    start, produced = time.perf_counter(), 0
    for view_a, _ in batches:
        produced += view_a.num_graphs
    return produced / (time.perf_counter() - start)


def measure(name: str, ctx: Context, args) -> dict:
    view_batches = _view_batches(ctx, args)
    structures = sum(a.num_graphs for a, _ in view_batches)
    out: dict = {}
    t_fp32 = timed(
        over_batches(contrastive_step_fn(build_model(name, ctx), ctx), view_batches), ctx.device, args.repeats
    )
    out["contrastive_structures_per_s"] = structures / t_fp32
    try:
        step = contrastive_step_fn(build_model(name, ctx), ctx, autocast=True)
        out["bf16_speedup"] = t_fp32 / timed(over_batches(step, view_batches), ctx.device, args.repeats)
    except Exception as error:  # report and go on: one failure must not hide the other figures
        out["bf16_error"] = f"{type(error).__name__}: {error}"[:300]
    if args.compile:
        try:
            step = contrastive_step_fn(build_model(name, ctx), ctx, compile_encoder=True)
            compile_start = time.perf_counter()
            over_batches(step, view_batches)()  # compiles (dynamic shapes) before timing
            out["compile_warmup_s"] = time.perf_counter() - compile_start
            out["compile_speedup"] = t_fp32 / timed(
                over_batches(step, view_batches), ctx.device, args.repeats
            )
        except Exception as error:
            out["compile_error"] = f"{type(error).__name__}: {error}"[:300]
    out.update(end_to_end(build_model(name, ctx), ctx, args))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS), choices=list(ENCODERS))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-batches", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="float32", choices=["float32"])
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (the default data config)")
    parser.add_argument("--loader-passes", type=int, default=2)
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    ctx = make_context(args)
    device_name = torch.cuda.get_device_name() if ctx.device.type == "cuda" else "cpu"
    print(
        f"# {device_name} torch {torch.__version__}, batches of {args.batch_size} graphs,"
        f" workers {args.workers}"
    )
    results = {"device": device_name}
    results["loader_structures_per_s"] = loader_alone(ctx, args)
    print("loader alone", round(results["loader_structures_per_s"], 1), "structures/s", flush=True)
    for name in args.encoders:
        results[name] = measure(name, ctx, args)
        print(
            name,
            json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results[name].items()}),
            flush=True,
        )
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
