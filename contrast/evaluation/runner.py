"""``python -m contrast.evaluate checkpoint=PATH_OR_NAME suite.data_dir=DIR``: an encoder on a probe suite.

For each task of the suite (``conf/suite/<name>.yaml``, chosen with ``suite=<name>``; tasks are described in
:mod:`contrast.evaluation.suite`), :func:`contrast.evaluation.probes.report.probe_report` fits ridge, kNN and
MLP probes on the
encoder's frozen embeddings and, on the same split, on a freshly initialised encoder of the same architecture,
on element fractions and on element-property statistics. Tasks that probe the same structures (the two MP
tasks) share one report, so their graphs are embedded once.

Held-out data: the MP tasks score the ``test`` part of
``composition_split(formulas, (0.8, 0.1, 0.1), seed=0)`` of the whole ``mp_train.extxyz.gz``. The MP
pretraining recipe splits the same file with the same composition split, so its training part never holds a
formula of this test part. That argument covers only encoders
pretrained that way; ``tasks/<task>/split.json`` names the scored structures by id, for the leakage guard of
other pretraining runs (``data.exclude_from``).

Outputs, in the Hydra run directory (``runs/evaluate/<date_time>`` by default, or ``hydra.run.dir=``):

- ``results.json``: per task its file, label, split, sizes, the probe report and timings;
- ``results.md``: the encoder, checkpoint, date and seed, and one table per probe (also printed at the end);
- ``ratios.png``: per task the ridge MAE ratios pretrained / fresh encoder and pretrained / composition;
- ``tasks/<task>/``: ``split.json`` and parity plots of the encoder's probes.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from torch import nn

from contrast.data.splits import save_split
from contrast.evaluation.report import ratios_plot, results_markdown
from contrast.evaluation.suite import SuiteData, TaskSpec, parse_suite

__all__ = ["describe_encoder", "evaluate"]

log = logging.getLogger("contrast.evaluate")


def evaluate(
    encoder_or_checkpoint: nn.Module | str | Path,
    suite: Mapping[str, Any],
    output_dir: str | Path,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    goals: Sequence[float] = (0.85, 0.75),
    threads: int | None = None,
    pooling: str | None = None,
    scored: str = "test",
    layers: str | None = None,
) -> dict[str, Any]:
    """Score an encoder on each task of a suite; write ``results.json``, ``results.md`` and ``ratios.png``.

    Args:
        encoder_or_checkpoint: a :class:`~contrast.nn.base.CrystalEncoder`, or anything
            :func:`contrast.load_encoder` takes (a checkpoint path, a shipped encoder's name).
        suite: ``{"name", "data_dir", "skip_missing", "tasks": {name: task}}``, a ``conf/suite`` entry.
        output_dir: where the outputs go (created).
        seed: seeds the fresh encoder and the probes (each task's split has its own seed).
        cache_dir: dataset cache root (default ``$CONTRAST_CACHE`` or ``~/.cache/contrast``).
        goals: ratio lines drawn in ``ratios.png``.
        threads: CPU threads of torch and the BLAS/OpenMP pools while it runs (None: leave them as they are).
        pooling: the graph readout to probe with (e.g. ``mean+std+max``; None: the encoder's own). The fresh
            encoder baseline is a copy of the encoder, so it is read out the same way.
        layers: the per-atom features pooled: ``last`` (the encoder's output) or ``all`` (the atom embedding
            and every layer side by side); None: the encoder's own. The fresh encoder is read out the same
            way.
        scored: ``test`` (the reported numbers) or ``val``: score each task's validation part instead, to
            choose a recipe or readout without the test parts
            (:meth:`contrast.evaluation.suite.SuiteData.task_graphs`).

    Returns:
        The content of ``results.json``: ``suite``, ``checkpoint``, ``encoder``, ``data_dir``, ``date``,
        ``seed``, ``seconds``, ``skipped`` (tasks whose file is missing) and ``tasks``: per task ``file``,
        ``target``, ``label``, ``unit``, ``select``, ``split``, ``sizes``, ``report`` (of ``probe_report``,
        non-finite numbers as null), ``seconds`` and ``shared_with`` (tasks probed in the same report).

    Raises:
        FileNotFoundError: a task's file is missing (all of them named), unless ``skip_missing``.
        ValueError: a bad task entry, or a task whose labels or split cannot be made (named).
    """
    start = time.perf_counter()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    suite = OmegaConf.to_container(suite, resolve=True) if isinstance(suite, DictConfig) else dict(suite)
    if not suite.get("data_dir"):
        raise ValueError("the suite needs data_dir, the folder its task files are relative to")
    data_dir = Path(suite["data_dir"])
    specs, skipped = _present(parse_suite(suite.get("tasks") or {}), data_dir, suite.get("skip_missing"))
    encoder, checkpoint = _encoder(encoder_or_checkpoint)
    if pooling is not None or layers is not None:
        from contrast.nn.base import check_pooling, check_readout_layers

        encoder = copy.deepcopy(encoder)  # the caller's encoder keeps its own readout
        if pooling is not None:
            encoder.pooling = check_pooling(pooling)
        if layers is not None:
            encoder.readout_layers = check_readout_layers(layers)
    data = SuiteData(specs, data_dir, encoder.cutoff, cache_dir)
    tasks: dict[str, Any] = {}
    with _thread_limit(threads):
        for group in _groups(specs):
            tasks.update(_run_group(encoder, data, group, seed, output_dir, scored))
    results = {
        "suite": str(suite.get("name", "suite")),
        "checkpoint": checkpoint,
        "encoder": describe_encoder(encoder),
        "data_dir": str(data_dir),
        "date": datetime.now().isoformat(timespec="seconds"),
        "seed": int(seed),
        "scored": scored,
        "threads": threads,
        "seconds": time.perf_counter() - start,
        "skipped": skipped,
        "tasks": {spec.name: tasks[spec.name] for spec in specs},
    }
    results = _finite(results)
    (output_dir / "results.json").write_text(json.dumps(results, indent=1))
    (output_dir / "results.md").write_text(results_markdown(results))
    ratios_plot(results, output_dir / "ratios.png", goals=goals)
    return results


def describe_encoder(encoder: nn.Module) -> dict[str, Any]:
    """Class, widths, cutoff (Å) and parameter count of an encoder."""
    from contrast.nn.base import num_parameters

    cls = type(encoder)
    hidden = getattr(encoder, "hidden_dim", None)
    return {
        "name": cls.__name__,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "hidden_dim": None if hidden is None else int(hidden),
        "embedding_dim": int(encoder.embedding_dim),
        "pooling": str(getattr(encoder, "pooling", "mean")),
        "readout_layers": str(getattr(encoder, "readout_layers", "last")),
        "cutoff": float(encoder.cutoff),
        "parameters": int(num_parameters(encoder)),
    }


def _encoder(encoder_or_checkpoint: nn.Module | str | Path) -> tuple[nn.Module, str]:
    if isinstance(encoder_or_checkpoint, nn.Module):
        return encoder_or_checkpoint, "<in memory>"
    from contrast.pretrained.loading import load_encoder

    checkpoint = str(encoder_or_checkpoint)
    encoder = load_encoder(checkpoint)
    path = Path(checkpoint).expanduser()
    return encoder, str(path.resolve()) if path.is_file() else checkpoint


def _present(specs: list[TaskSpec], data_dir: Path, skip_missing: bool) -> tuple[list[TaskSpec], list[dict]]:
    """The tasks whose file exists, and a record of each one skipped; missing files raise unless skipped."""
    missing = [spec for spec in specs if not (data_dir / spec.file).is_file()]
    if missing and not skip_missing:
        names = ", ".join(f"{spec.name} ({data_dir / spec.file})" for spec in missing)
        raise FileNotFoundError(
            f"missing task file(s): {names}; set suite.data_dir to the folder holding them, or "
            "suite.skip_missing=true to skip those tasks"
        )
    skipped = [{"task": s.name, "file": str(data_dir / s.file), "reason": "file missing"} for s in missing]
    for record in skipped:
        log.warning("skipping task %s: no file %s", record["task"], record["file"])
    kept = [spec for spec in specs if spec not in missing]
    if not kept:
        raise FileNotFoundError(f"no task of the suite has its file in {data_dir}")
    return kept, skipped


def _groups(specs: Sequence[TaskSpec]) -> list[list[TaskSpec]]:
    """Tasks grouped by the structures they probe (first appearance order), one label per group at most."""
    groups: list[list[TaskSpec]] = []
    for spec in specs:
        group = next(
            (
                g
                for g in groups
                if g[0].graphs_key == spec.graphs_key and spec.label not in {s.label for s in g}
            ),
            None,
        )
        if group is None:
            groups.append([spec])
        else:
            group.append(spec)
    return groups


def _run_group(
    encoder: nn.Module, data: SuiteData, group: list[TaskSpec], seed: int, output_dir: Path, scored: str
) -> dict[str, Any]:
    from contrast.evaluation.probes.report import probe_report

    names = [spec.name for spec in group]
    log.info("task %s: loading %s", " + ".join(names), data.path(group[0]))
    start = time.perf_counter()
    graphs = data.task_graphs(group, scored)
    loaded = time.perf_counter()
    log.info(
        "task %s: probing %d train / %d test structures",
        " + ".join(names),
        len(graphs.train),
        len(graphs.test),
    )
    with tempfile.TemporaryDirectory(dir=output_dir, prefix=".plots-") as scratch:
        report = probe_report(
            encoder,
            graphs.train,
            graphs.test,
            targets=[spec.label for spec in group],
            kind="regression",
            seed=seed,
            output_dir=scratch,
        )
        for spec in group:
            folder = output_dir / "tasks" / spec.name
            folder.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(folder / "plots", ignore_errors=True)
            shutil.move(str(Path(scratch) / f"plots_{spec.label}"), str(folder / "plots"))
            save_split(graphs.split, folder / "split.json", graphs.dataset.ids)
    probed = time.perf_counter()
    seconds = {"data": loaded - start, "probes": probed - loaded, "total": probed - start}
    log.info("task %s: done in %.1f s", " + ".join(names), seconds["total"])
    return {
        spec.name: {
            "file": spec.file,
            "target": spec.target,
            "label": spec.label,
            "unit": spec.unit,
            "select": dict(spec.select) or None,
            "split": {"kind": spec.split, "fractions": list(spec.fractions), "seed": spec.seed},
            "sizes": graphs.sizes,
            "report": {"probe_split": report["probe_split"], spec.label: report[spec.label]},
            "seconds": seconds,
            "shared_with": [name for name in names if name != spec.name],
        }
        for spec in group
    }


@contextlib.contextmanager
def _thread_limit(threads: int | None) -> Iterator[None]:
    """At most ``threads`` threads for torch and the BLAS/OpenMP pools (restored afterwards)."""
    if threads is None:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        with threadpool_limits(limits=int(threads)):
            yield
    finally:
        torch.set_num_threads(previous)


def _finite(value: Any) -> Any:
    """A JSON-ready copy: numpy scalars as Python numbers, NaN and infinity as None."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
