"""Online quality curves of several pretraining runs on one figure, next to fixed encoders probed alike.

    python benchmarks/online_curves.py --data-dir ../shared/data --out runs/curves \
        --runs "tau 0.2, 4,800 steps=runs/contrastive/a" "tau 0.1=runs/contrastive/b" \
        --references painn-mp-cpu-2400 fresh

Each run directory holds the ``online_probe.csv`` its ``online_probe`` callback wrote (the ``mp_pretrain*``
presets write one). Each reference (a shipped encoder's name, a checkpoint path, or ``fresh``: a freshly
initialised copy of the first named encoder) is scored once with the same probe as the runs
(:class:`contrast.tasks.online_probe.OnlineProbe`: the suite's MP tasks, 2,000 training and 500 validation
structures, ridge on mean+std+max of every layer; never a test part) and drawn as a horizontal line.

Writes ``<out>/online_curves.png`` (ratio to the composition ridge against steps and against wall time, one
row per task) and ``<out>/online_curves.md`` (each run's last and best values, and the references').
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def read_curve(run_dir: Path) -> list[dict[str, float]]:
    """The rows of a run's ``online_probe.csv`` (floats), in step order."""
    path = run_dir / "online_probe.csv"
    if not path.exists():
        raise SystemExit(f"{run_dir}: no online_probe.csv (was online_probe on for that run?)")
    with open(path) as handle:
        rows = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]
    return sorted(rows, key=lambda row: row["step"])


def score_references(
    names: list[str], data_dir: Path, tasks: list[str], pooling: str, layers: str
) -> dict[str, dict[str, float]]:
    """``{name: {online/<task>_mae: ..., online/<task>_ratio: ...}}`` of fixed encoders, probed like runs."""
    import contrast
    from contrast.evaluation.probes.baselines import random_encoder_like
    from contrast.tasks.online_probe import OnlineProbe

    probe = OnlineProbe("default", str(data_dir), tasks=tasks, pooling=pooling, layers=layers)
    scores, first = {}, None
    for name in names:
        if name == "fresh":
            if first is None:
                raise SystemExit("--references: name an encoder before 'fresh' (its architecture is copied)")
            encoder = random_encoder_like(first, seed=0)
        else:
            encoder = contrast.load_encoder(name)
            first = first or encoder
        scores[name] = probe.probe(encoder)
    return scores


def table(curves: dict[str, list[dict]], references: dict[str, dict], tasks: list[str]) -> str:
    lines = [
        "| curve | steps | " + " | ".join(f"{t} ratio, last | {t} ratio, best (step)" for t in tasks) + " |",
        "| --- | ---: | " + " | ".join("---: | ---:" for _ in tasks) + " |",
    ]
    for name, rows in curves.items():
        cells = []
        for task in tasks:
            key = f"online/{task}_ratio"
            scored = [row for row in rows if key in row]
            best = min(scored, key=lambda row: row[key])
            cells += [f"{scored[-1][key]:.3f}", f"{best[key]:.3f} ({int(best['step'])})"]
        lines.append(f"| {name} | {int(rows[-1]['step'])} | " + " | ".join(cells) + " |")
    for name, scores in references.items():
        cells = []
        for task in tasks:
            cells += [f"{scores[f'online/{task}_ratio']:.3f}", ""]
        lines.append(f"| {name} (fixed) | | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(curves: dict[str, list[dict]], references: dict[str, dict], tasks: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(tasks), 2, figsize=(10, 3.4 * len(tasks)), squeeze=False, sharey="row")
    for row, task in enumerate(tasks):
        key = f"online/{task}_ratio"
        for name, rows in curves.items():
            scored = [r for r in rows if key in r]
            axes[row][0].plot(
                [r["step"] for r in scored], [r[key] for r in scored], marker="o", ms=3, label=name
            )
            axes[row][1].plot([r["wall_s"] / 60 for r in scored], [r[key] for r in scored], marker="o", ms=3)
        for k, (name, scores) in enumerate(references.items()):
            for ax in axes[row]:
                ax.axhline(
                    scores[key],
                    ls="--",
                    color=f"C{len(curves) + k}",
                    lw=1,
                    label=name if ax is axes[row][0] else None,
                )
        axes[row][0].set_ylabel(f"{task}: ridge MAE / composition (val)")
        axes[row][0].legend(fontsize=7)
        for ax in axes[row]:
            ax.grid(alpha=0.3)
    axes[-1][0].set_xlabel("training step")
    axes[-1][1].set_xlabel("wall time (min)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", nargs="+", required=True, help="LABEL=RUN_DIR of runs with online_probe.csv"
    )
    parser.add_argument("--references", nargs="*", default=[], help="shipped names, checkpoints, or fresh")
    parser.add_argument("--data-dir", type=Path, help="the suite's data folder (for --references)")
    parser.add_argument("--tasks", nargs="+", default=["mp_e_form", "mp_band_gap"])
    parser.add_argument("--pooling", default="mean+std+max")
    parser.add_argument("--layers", default="all")
    parser.add_argument("--out", type=Path, default=Path("runs/online_curves"))
    args = parser.parse_args(argv)
    curves = {}
    for item in args.runs:
        label, _, run_dir = item.rpartition("=")
        curves[label or run_dir] = read_curve(Path(run_dir))
    references = {}
    if args.references:
        if args.data_dir is None:
            raise SystemExit("--references need --data-dir")
        references = score_references(args.references, args.data_dir, args.tasks, args.pooling, args.layers)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "references.json").write_text(json.dumps(references, indent=1))
    (args.out / "online_curves.md").write_text(table(curves, references, args.tasks))
    plot(curves, references, args.tasks, args.out / "online_curves.png")
    print(table(curves, references, args.tasks))


if __name__ == "__main__":
    main()
