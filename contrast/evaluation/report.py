"""What a probe-suite run shows: ``results.md`` (tables of test MAE and ratios) and ``ratios.png``.

Both read the ``results`` dict of :func:`contrast.evaluate.evaluate` (the content of ``results.json``).
Figures are drawn on an Agg canvas directly, without pyplot, as in :mod:`contrast.evaluation.probes.plots`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["PROBE_TITLES", "comparison_markdown", "results_markdown", "ratios_plot"]

PROBE_TITLES = {"linear": "Ridge", "knn": "kNN", "mlp": "MLP"}
FEATURE_SETS = ("pretrained", "random_encoder", "fractions", "statistics")
COLUMNS = (
    "task",
    "label",
    "train",
    "test",
    "pretrained",
    "fresh encoder",
    "fractions",
    "statistics",
    "pretrained / fresh",
    "pretrained / composition",
)


def results_markdown(results: dict[str, Any]) -> str:
    """The run's header (encoder, checkpoint, data, date, seed) and one table of test MAE per probe.

    Rows are tasks; columns the MAE of the pretrained encoder, the fresh encoder of the same architecture, the
    element fractions and the element-property statistics, then the ratios pretrained / fresh and pretrained /
    better composition baseline (below 1: the pretrained encoder is better).
    """
    encoder = results["encoder"]
    lines = [
        f"# Probe suite `{results['suite']}`: {encoder['name']}",
        "",
        f"- encoder: {encoder['name']} (`{encoder['class']}`), hidden width {encoder.get('hidden_dim')}, "
        f"embedding {encoder['embedding_dim']} ({encoder.get('pooling', 'mean')} pooling of "
        f"{'every layer' if encoder.get('readout_layers') == 'all' else 'the last layer'}), "
        f"{encoder['parameters']:,} parameters, "
        f"cutoff {encoder['cutoff']:g} Å",
        f"- checkpoint: `{results['checkpoint']}`",
        f"- data: `{results['data_dir']}`",
        f"- date: {results['date']}; wall time {results['seconds']:.0f} s",
        f"- seed: {results['seed']} (fresh encoder and probes; each task's split has its own fixed seed)",
    ]
    scored = results.get("scored", "test")
    if scored == "val":
        lines.append(
            "- scored: the validation parts (for choosing a recipe; the `test` column holds validation "
            "structures, and no test structure was read)"
        )
    lines.append("")
    for probe, title in PROBE_TITLES.items():
        lines += [f"## {title}: {scored} MAE", "", _row(COLUMNS), _row(["---"] * 2 + ["---:"] * 8)]
        for name, task in results["tasks"].items():
            lines.append(_row(_task_cells(name, task, probe)))
        lines.append("")
    lines += ["## Wall time", "", _row(["task", "data (s)", "probes (s)", "one report with"])]
    lines.append(_row(["---", "---:", "---:", "---"]))
    for name, task in results["tasks"].items():
        seconds = task["seconds"]
        shared = ", ".join(task.get("shared_with") or []) or "-"
        lines.append(_row([name, f"{seconds['data']:.1f}", f"{seconds['probes']:.1f}", shared]))
    lines.append("")
    if results.get("skipped"):
        lines.append(
            "Skipped (file missing): " + ", ".join(f"{s['task']} ({s['file']})" for s in results["skipped"])
        )
        lines.append("")
    return "\n".join(lines)


def comparison_markdown(runs: dict[str, dict[str, Any]], probes: Sequence[str] = ("linear", "knn")) -> str:
    """One table of several encoders' suite runs side by side (``{name: results.json content}``): per task and
    probe, each encoder's MAE and, in brackets, its ratio to its own fresh encoder; then the composition
    baselines (the same for every encoder, taken from the first run). Tasks are those of the first run.

    Raises:
        ValueError: runs scored on different parts (test and val), or of tasks with different splits.
    """
    names = list(runs)
    first = runs[names[0]]
    scored = {results.get("scored", "test") for results in runs.values()}
    if len(scored) > 1:
        raise ValueError(f"the runs score different parts {sorted(scored)}: compare like with like")
    header = ["task", "probe", *names, "element fractions", "element statistics"]
    lines = [
        f"MAE on the {scored.pop()} parts (ratio to the encoder's own fresh copy in brackets)",
        "",
        _row(header),
        _row(["---", "---"] + ["---:"] * (len(header) - 2)),
    ]
    for task_name, task in first["tasks"].items():
        for probe in probes:
            cells = [f"{task_name} ({task.get('unit') or task['label']})", PROBE_TITLES[probe]]
            for name in names:
                other = runs[name]["tasks"].get(task_name)
                if other is None:
                    cells.append("-")
                    continue
                if other["sizes"] != task["sizes"]:
                    raise ValueError(f"task {task_name}: {name} probed other structures ({other['sizes']})")
                per_target = other["report"][other["label"]]
                mae = per_target["pretrained"][probe]["mae"]
                ratio = per_target.get("ratios", {}).get(probe, {}).get("vs_random_encoder")
                cells.append(f"{_number(mae, '.4g')} ({_number(ratio, '.2f')})")
            per_target = task["report"][task["label"]]
            cells += [
                _number(per_target[feature][probe]["mae"], ".4g") for feature in ("fractions", "statistics")
            ]
            lines.append(_row(cells))
    return "\n".join(lines) + "\n"


def _task_cells(name: str, task: dict[str, Any], probe: str) -> list[str]:
    per_target = task["report"][task["label"]]
    unit = f" ({task['unit']})" if task.get("unit") else ""
    maes = [_number(per_target[feature][probe]["mae"], ".4g") for feature in FEATURE_SETS]
    ratios = per_target.get("ratios", {}).get(probe, {})
    return [
        name,
        task["label"] + unit,
        str(task["sizes"]["train"]),
        str(task["sizes"]["test"]),
        *maes,
        _number(ratios.get("vs_random_encoder"), ".3f"),
        _number(ratios.get("vs_composition"), ".3f"),
    ]


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _number(value: float | None, spec: str) -> str:
    return "n/a" if value is None or not math.isfinite(value) else format(value, spec)


def ratios_plot(
    results: dict[str, Any], path: str | Path, probe: str = "linear", goals: Sequence[float] = (0.85, 0.75)
) -> Path:
    """Bars of each task's MAE ratios pretrained / fresh encoder and pretrained / composition for one probe.

    A solid line marks 1.0 (no better than the baseline) and dashed lines the ``goals``; written as PNG.

    Returns:
        The written path.
    """
    names = list(results["tasks"])
    ratios = np.full((2, len(names)), np.nan)  # [2, T]
    for t, name in enumerate(names):
        task = results["tasks"][name]
        values = task["report"][task["label"]].get("ratios", {}).get(probe, {})
        for r, key in enumerate(("vs_random_encoder", "vs_composition")):
            value = values.get(key)
            ratios[r, t] = value if value is not None and math.isfinite(value) else np.nan
    figure = Figure(figsize=(max(5.0, 0.7 * len(names) + 2.0), 4.0), layout="constrained")
    axes = figure.add_subplot()
    x, width = np.arange(len(names)), 0.38
    axes.bar(x - width / 2, ratios[0], width, label="pretrained / fresh encoder")
    axes.bar(x + width / 2, ratios[1], width, label="pretrained / composition")
    axes.axhline(1.0, color="0.3", lw=1)
    for goal, style in zip(goals, ("--", ":", "-.")):
        axes.axhline(goal, color="0.5", lw=1, ls=style, label=f"goal {goal:g}")
    axes.set_xticks(x, names, rotation=45, ha="right")
    title = PROBE_TITLES.get(probe, probe)
    axes.set(ylabel=f"{title} test MAE ratio", title=f"{results['encoder']['name']}: {title} probe")
    axes.legend(frameon=False, fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=150, format="png")
    return path


def seed_curve(ax, points: Sequence[tuple[float, float]], label: str) -> None:
    """Draw one learning curve on a matplotlib axis: the mean over seeds at each x, with bars from the lowest
    to the highest seed. ``points`` holds ``(x, value)`` pairs, one per run."""
    xs = sorted({x for x, _ in points})
    values = [[v for x, v in points if x == at] for at in xs]
    mean = np.array([np.mean(v) for v in values])
    low = mean - np.array([min(v) for v in values])
    high = np.array([max(v) for v in values]) - mean
    ax.errorbar(xs, mean, yerr=[low, high], marker="o", capsize=3, label=label)
