"""Label efficiency: fine-tuning from a pretrained encoder against the same architecture from scratch.

    python benchmarks/label_efficiency.py --data-dir ../shared/data --checkpoint painn-mp-cpu-1200 \
        --out runs/label_efficiency [--fractions 0.01 0.05 0.1 0.25 1.0] [--seeds 0 1] [--steps 300]

For each task of the probe suite named by ``--tasks`` (default: MP formation energy, MP band gap, perov_5 heat
of formation), the suite's own split gives a training pool and a test part (``conf/suite/default.yaml``: the
MP test formulas were never seen in pretraining). A fixed validation part (``--val`` structures, seeded) is
carved from the pool once; each labelled fraction is a seeded subsample of the rest, nested across fractions.
Every (task, fraction, seed) is fine-tuned twice with ``python -m contrast.train task=finetune`` (the user's
path, with a ``splits.json`` of ids): once from ``--checkpoint`` and once from a freshly initialised encoder
of the same architecture and readout. Both get the same budget: ``--steps`` optimiser steps of ``--batch-
size``, validation every ``--val-every`` steps, and the weights of the lowest validation loss are tested.

Writes ``<out>/results.json`` (every run's test MAE and its run directory), ``<out>/label_efficiency.md`` (the
table: seed-mean MAE per start and the ratio pretrained / scratch) and ``<out>/label_efficiency.png`` (MAE
against the number of training labels). Runs already finished in ``<out>`` are read back, not repeated.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

DEFAULT_TASKS = ("mp_e_form", "mp_band_gap", "perov_5_heat")
DEFAULT_FRACTIONS = (0.01, 0.05, 0.1, 0.25, 1.0)


def suite_tasks(names: list[str]):
    """The :class:`contrast.evaluation.suite.TaskSpec` s of the default suite with these names."""
    from omegaconf import OmegaConf

    from contrast.evaluation.suite import parse_suite

    suite = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "suite" / "default.yaml")
    tasks = OmegaConf.to_container(suite.tasks, resolve=True)
    missing = [name for name in names if name not in tasks]
    if missing:
        raise SystemExit(f"unknown task(s) {missing}; the suite has {sorted(tasks)}")
    return parse_suite({name: tasks[name] for name in names})


def task_split_files(spec, data_dir: Path, cutoff: float, val_size: int, fractions, seeds, out: Path):
    """Write a ``splits.json`` (by id) per (fraction, seed) of one task; returns ``{(fraction, seed): path}``
    and the pool sizes."""
    from contrast.data.splits import nested_subsets, save_split
    from contrast.evaluation.suite import SuiteData

    suite = SuiteData([spec], data_dir, cutoff)
    graphs = suite.task_graphs([spec])
    dataset = graphs.dataset
    train_positions = np.asarray(graphs.split["train"])
    rng = np.random.default_rng([spec.seed, 11])
    order = rng.permutation(len(train_positions))
    n_val = min(val_size, len(train_positions) // 5)
    val = train_positions[order[:n_val]]
    pool = train_positions[order[n_val:]]
    files, sizes = {}, {"pool": len(pool), "val": int(n_val), "test": len(graphs.split["test"])}
    for seed in seeds:
        for fraction, train in nested_subsets(pool, fractions, seed).items():
            path = out / spec.name / f"splits_f{fraction:g}_s{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            split = {"train": train.tolist(), "val": val.tolist(), "test": list(graphs.split["test"])}
            save_split(split, path, dataset.ids)
            files[(fraction, seed)] = (path, len(train))
    return files, sizes


def encoder_overrides(checkpoint: str) -> list[str]:
    """Hydra overrides that build a fresh encoder with the checkpoint's architecture, readout and cutoff (the
    encoder groups take their cutoff from ``data.cutoff``)."""
    from contrast.pretrained.checkpoint import encoder_config_and_weights, read_checkpoint
    from contrast.pretrained.loading import checkpoint_path

    path = checkpoint_path(checkpoint)
    config, _ = encoder_config_and_weights(read_checkpoint(path), source=path)
    target = config.pop("_target_")
    groups = {
        "contrast.nn.painn.PaiNN": "painn",
        "contrast.nn.schnet.SchNet": "schnet",
        "contrast.nn.cgcnn.CGCNN": "cgcnn",
    }
    if target not in groups:
        raise SystemExit(f"no encoder config group for {target}")
    options = [f"encoder.{k}={v}" for k, v in config.items() if k != "cutoff"]
    cutoff = [f"data.cutoff={config['cutoff']}"] if config.get("cutoff") is not None else []
    return [f"encoder={groups[target]}", *options, *cutoff]


def finetune_once(spec, split_file: Path, start: str | None, seed: int, args, run_dir: Path, scratch: list):
    """One fine-tuning run through ``contrast.train``; returns its test MAE (read back when done before)."""
    result = run_dir / "metrics.json"
    if not _finished(result):
        import shutil

        from contrast.cli.train import run_training

        shutil.rmtree(run_dir, ignore_errors=True)  # an interrupted run starts again

        overrides = [
            "task=finetune",
            f"data.path={args.data_dir / spec.file}",
            f"data.targets=[{spec.target}]",
            "data.on_error=skip",  # frames without this label (perov_5's unlabelled train frames)
            "data.split=file",
            f"data.split_file={split_file}",
            f"data.batch_size={args.batch_size}",
            "data.num_workers=0",
            f"seed={seed}",
            f"task.optimizer.lr={args.lr}",
            f"task.layer_decay={args.layer_decay}",
            "task.early_stopping=null",
            "task.restore_best=true",
            f"+trainer.max_steps={args.steps}",
            "trainer.max_epochs=100000",
            "+trainer.check_val_every_n_epoch=null",
            f"+trainer.val_check_interval={args.val_every}",
            "trainer.enable_progress_bar=false",
            "logger=none",
        ]
        overrides += [f"task.checkpoint={start}"] if start else ["task.checkpoint=null", *scratch]
        run_training(overrides, run_dir)
    metrics = json.loads(result.read_text())
    return float(metrics["finetune"][spec.target]["mae"])


def _finished(metrics: Path) -> bool:
    """Whether a run wrote its test report (``metrics.json`` is also written after every epoch)."""
    return metrics.exists() and "finetune" in json.loads(metrics.read_text())


def table(results: list[dict], fractions: list[float]) -> str:
    """Markdown: seed-mean test MAE per start, the ratio pretrained / scratch and per-seed ratios."""
    lines = [
        "| task | labels (fraction) | pretrained MAE | scratch MAE | pretrained / scratch | per seed |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for task in dict.fromkeys(r["task"] for r in results):
        for fraction in fractions:
            rows = [r for r in results if r["task"] == task and r["fraction"] == fraction]
            if not rows:
                continue
            pre = [r["pretrained_mae"] for r in rows]
            scr = [r["scratch_mae"] for r in rows]
            per_seed = ", ".join(f"{p / s:.3f}" for p, s in zip(pre, scr))
            lines.append(
                f"| {task} | {rows[0]['labels']} ({fraction:g}) | {np.mean(pre):.4g} | {np.mean(scr):.4g} | "
                f"{np.mean(pre) / np.mean(scr):.3f} | {per_seed} |"
            )
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    """MAE against training labels, one panel per task (seed means, bars from the lowest to the highest)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from contrast.evaluation.report import seed_curve

    tasks = list(dict.fromkeys(r["task"] for r in results))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        rows = [r for r in results if r["task"] == task]
        for key, name in (("pretrained_mae", "pretrained"), ("scratch_mae", "scratch")):
            seed_curve(ax, [(r["labels"], r[key]) for r in rows], name)
        ax.set_xscale("log")
        ax.set_xlabel("training labels")
        ax.set_ylabel(f"test MAE ({rows[0]['unit']})")
        ax.set_title(task)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--checkpoint", default="painn-mp-cpu-1200", help="a checkpoint file or shipped name")
    parser.add_argument("--out", type=Path, default=Path("runs/label_efficiency"))
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS))
    parser.add_argument("--fractions", nargs="+", type=float, default=list(DEFAULT_FRACTIONS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps of every run")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--val-every", type=int, default=50, help="steps between validations")
    parser.add_argument("--val", type=int, default=500, help="validation structures carved from the pool")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--layer-decay", type=float, default=1.0)
    parser.add_argument("--max-pool", type=int, default=None, help="cap the training pool (seeded)")
    args = parser.parse_args(argv)
    args.data_dir = args.data_dir.resolve()
    args.out.mkdir(parents=True, exist_ok=True)

    from contrast.pretrained.loading import load_encoder

    cutoff = float(load_encoder(args.checkpoint).cutoff)
    scratch = encoder_overrides(args.checkpoint)
    results = []
    for spec in suite_tasks(args.tasks):
        if args.max_pool:
            from dataclasses import replace

            spec = replace(spec, max_train=min(args.max_pool, spec.max_train or math.inf))
        files, sizes = task_split_files(
            spec, args.data_dir, cutoff, args.val, args.fractions, args.seeds, args.out
        )
        for (fraction, seed), (split_file, n_labels) in sorted(files.items()):
            row = {
                "task": spec.name,
                "unit": spec.unit,
                "fraction": fraction,
                "seed": seed,
                "labels": n_labels,
            }
            for key, start in (("pretrained", args.checkpoint), ("scratch", None)):
                run_dir = (args.out / spec.name / f"{key}_f{fraction:g}_s{seed}").resolve()
                row[f"{key}_mae"] = finetune_once(spec, split_file, start, seed, args, run_dir, scratch)
                row[f"{key}_run"] = str(run_dir)
            row["ratio"] = row["pretrained_mae"] / row["scratch_mae"]
            row["sizes"] = sizes
            results.append(row)
            print(json.dumps({k: v for k, v in row.items() if not k.endswith("_run")}), flush=True)
            summary = {"settings": {k: str(v) for k, v in vars(args).items()}, "runs": results}
            (args.out / "results.json").write_text(json.dumps(summary, indent=1))
    (args.out / "label_efficiency.md").write_text(table(results, args.fractions))
    plot(results, args.out / "label_efficiency.png")
    print(table(results, args.fractions))


if __name__ == "__main__":
    main()
