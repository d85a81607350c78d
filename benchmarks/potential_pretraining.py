"""What pretraining gives an interatomic potential: the shipped encoder against scratch, frozen against full.

    OMP_NUM_THREADS=1 python benchmarks/potential_pretraining.py --data-dir ../shared/data \\
        --out runs/potential_pretraining [--elements Si Cu] [--fractions 0.1 0.25 1.0] [--seeds 0 1] \\
        [--minutes 2] [--checkpoint painn-mp-cpu-2400]

For each mlearn training file, the split of ``experiment=mlearn`` (contiguous blocks of 10 frames of each
``group`` spread evenly along it, 10% validation, seed 0) fixes one validation part; each fraction of the
remaining training frames is a seeded subsample, nested across fractions
(``contrast.data.splits.nested_subsets``). Every (element, fraction, seed) trains ``python -m contrast.train
experiment=mlearn`` three times with the same wall-clock budget:

- ``scratch``: a freshly initialised encoder of the preset's architecture, everything trained;
- ``pretrained``: the encoder of ``--checkpoint``, everything trained;
- ``frozen``: the encoder of ``--checkpoint`` frozen (``task.freeze_encoder=true``), only the energy head
  trained.

The seed sets the subsample and the initialisation. Each run's last weights are scored on the validation
part (``val_by_group`` of its ``metrics.json``: energy MAE per atom and force MAE per component, per group and
in all).

Writes ``<out>/results.json``, ``<out>/potential_pretraining.md`` (seed means and the ratios to scratch) and
``<out>/potential_pretraining.png`` (force and energy MAE against training frames). Finished runs in ``<out>``
are read back, not repeated.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ARMS = ("scratch", "pretrained", "frozen")


def preset_split(path: Path, seed: int = 0, block_size: int = 10, val_fraction: float = 0.1):
    """The ids of a file's frames and the preset's block split of them (positions per part): blocks of each
    group, spread evenly along it (``data.block_spread=true``)."""
    from contrast.data.io.readers import read_file
    from contrast.data.splits import block_split

    entries = read_file(str(path))
    ids = [entry.id for entry in entries]
    groups = [str(entry.labels.get("group", "unknown")) for entry in entries]
    fractions = (1.0 - val_fraction, val_fraction, 0.0)
    split = block_split(groups, fractions, seed=seed, block_size=block_size, spread=True)
    return ids, groups, split


def write_split_files(path: Path, fractions, seeds, out: Path, block_size: int = 10) -> dict:
    """One ``splits.json`` per (fraction, seed): a nested subsample of the train part, the fixed val part."""
    from contrast.data.splits import nested_subsets, save_split

    ids, groups, split = preset_split(path, block_size=block_size)
    files = {}
    for seed in seeds:
        for fraction, train in nested_subsets(split["train"], fractions, seed).items():
            file = out / f"splits_f{fraction:g}_s{seed}.json"
            file.parent.mkdir(parents=True, exist_ok=True)
            save_split({"train": train.tolist(), "val": split["val"], "test": []}, file, ids)
            files[(fraction, seed)] = (file, len(train))
    val_groups = sorted({groups[i] for i in split["val"]})
    return {"files": files, "val": len(split["val"]), "pool": len(split["train"]), "val_groups": val_groups}


def arm_overrides(arm: str, checkpoint: str) -> list[str]:
    if arm == "scratch":
        return ["task.checkpoint=null"]
    if arm == "pretrained":
        return [f"task.checkpoint={checkpoint}"]
    if arm == "frozen":
        return [f"task.checkpoint={checkpoint}", "task.freeze_encoder=true"]
    raise ValueError(f"unknown arm {arm!r}; expected one of {ARMS}")


def finished(run_dir: Path) -> dict | None:
    """The validation errors per group of a finished run, else None."""
    metrics = run_dir / "metrics.json"
    if not metrics.exists():
        return None
    record = json.loads(metrics.read_text())
    return record.get("val_by_group")


def train_once(data: Path, split_file: Path, arm: str, seed: int, args, run_dir: Path) -> dict:
    """One ``experiment=mlearn`` run in its own process; returns its ``val_by_group``."""
    done = finished(run_dir)
    if done is not None:
        return done
    minutes = int(args.minutes)
    seconds = int(round((args.minutes - minutes) * 60))
    command = [
        sys.executable, "-m", "contrast.train", "experiment=mlearn",
        f"data.path={data}", "data.split=file", f"data.split_file={split_file}", f"seed={seed}",
        f"trainer.max_time=00:00:{minutes:02d}:{seconds:02d}", "logger=none",
        f"hydra.run.dir={run_dir}", *arm_overrides(arm, args.checkpoint), *args.override,
    ]  # fmt: skip
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "stdout.log", "w") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    done = finished(run_dir)
    if code != 0 or done is None:
        raise SystemExit(f"run {run_dir} failed (exit {code}); see {run_dir / 'stdout.log'}")
    return done


def summarise(results: list[dict]) -> list[dict]:
    """Seed means per (element, fraction, arm), with per-seed values and ratios to scratch."""
    rows = []
    keys = dict.fromkeys((r["element"], r["fraction"]) for r in results)
    for element, fraction in keys:
        cell = [r for r in results if r["element"] == element and r["fraction"] == fraction]
        by_arm = {arm: [r for r in cell if r["arm"] == arm] for arm in ARMS}
        if not by_arm["scratch"]:
            continue
        scratch_f = np.mean([r["force_mae"] for r in by_arm["scratch"]])
        scratch_e = np.mean([r["energy_mae"] for r in by_arm["scratch"]])
        for arm, runs in by_arm.items():
            if not runs:
                continue
            force = [r["force_mae"] for r in runs]
            energy = [r["energy_mae"] for r in runs]
            scratch_by_seed = {r["seed"]: r["force_mae"] for r in by_arm["scratch"]}
            rows.append(
                {
                    "element": element,
                    "fraction": fraction,
                    "frames": runs[0]["frames"],
                    "arm": arm,
                    "seeds": [r["seed"] for r in runs],
                    "energy_mae": float(np.mean(energy)),
                    "force_mae": float(np.mean(force)),
                    "force_per_seed": force,
                    "energy_ratio": float(np.mean(energy) / scratch_e),
                    "force_ratio": float(np.mean(force) / scratch_f),
                    "force_ratio_per_seed": [
                        r["force_mae"] / scratch_by_seed[r["seed"]]
                        for r in runs
                        if r["seed"] in scratch_by_seed
                    ],
                }
            )
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| element | frames (fraction) | start | energy MAE (meV/atom) | force MAE (eV/Å) | "
        "force / scratch | per seed | energy / scratch |",
        "| --- | ---: | --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for row in rows:
        per_seed = ", ".join(f"{x:.3f}" for x in row["force_ratio_per_seed"])
        lines.append(
            f"| {row['element']} | {row['frames']} ({row['fraction']:g}) | {row['arm']} | "
            f"{1000 * row['energy_mae']:.2f} | {row['force_mae']:.4f} | {row['force_ratio']:.3f} | "
            f"{per_seed} | {row['energy_ratio']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    """Force and energy MAE against training frames, one column per element (seed means, min-max bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    from contrast.evaluation.report import seed_curve

    elements = list(dict.fromkeys(r["element"] for r in results))
    fig, axes = plt.subplots(2, len(elements), figsize=(4.4 * len(elements), 6.4), squeeze=False)
    for column, element in enumerate(elements):
        for row, (key, unit, scale) in enumerate(
            (("force_mae", "eV/Å", 1.0), ("energy_mae", "meV/atom", 1e3))
        ):
            ax = axes[row][column]
            for arm in ARMS:
                runs = [r for r in results if r["element"] == element and r["arm"] == arm]
                if runs:
                    seed_curve(ax, [(r["frames"], scale * r[key]) for r in runs], arm)
            ax.set_xscale("log")
            ax.set_yscale("log")
            frames = sorted({r["frames"] for r in results if r["element"] == element})
            ax.set_xticks(frames, [str(n) for n in frames])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("training frames")
            ax.set_ylabel(f"validation {key.split('_')[0]} MAE ({unit})")
            ax.set_title(f"mlearn {element}")
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("runs/potential_pretraining"))
    parser.add_argument("--elements", nargs="+", default=["Si", "Cu"])
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.1, 0.25, 1.0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--minutes", type=float, default=2.0, help="wall-clock budget of every run")
    parser.add_argument("--checkpoint", default="painn-mp-cpu-2400", help="a checkpoint file or shipped name")
    parser.add_argument("--block-size", type=int, default=10, help="frames per validation block")
    parser.add_argument("--override", nargs="*", default=[], help="extra Hydra overrides for every run")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    results = []
    for element in args.elements:
        data = args.data_dir / f"mlearn_{element}_train.extxyz.gz"
        if not data.exists():
            raise SystemExit(f"no file {data}")
        plan = write_split_files(data, args.fractions, args.seeds, args.out / element, args.block_size)
        for seed in args.seeds:
            for fraction in args.fractions:
                split_file, frames = plan["files"][(fraction, seed)]
                for arm in args.arms:
                    run_dir = args.out / element / f"f{fraction:g}_s{seed}_{arm}"
                    groups = train_once(data, split_file, arm, seed, args, run_dir)
                    results.append(
                        {
                            "element": element,
                            "fraction": fraction,
                            "frames": frames,
                            "seed": seed,
                            "arm": arm,
                            "val_frames": plan["val"],
                            "energy_mae": groups["all"]["energy_mae_per_atom"],
                            "force_mae": groups["all"]["force_mae"],
                            "by_group": groups,
                            "run_dir": str(run_dir),
                        }
                    )
                    (args.out / "results.json").write_text(json.dumps(results, indent=1))
                    print(
                        f"{element} f={fraction:g} seed={seed} {arm}: force {groups['all']['force_mae']:.4f}"
                    )
    rows = summarise(results)
    (args.out / "potential_pretraining.md").write_text(table(rows))
    plot(results, args.out / "potential_pretraining.png")
    print(table(rows))


if __name__ == "__main__":
    main()
