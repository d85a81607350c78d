"""Online quality curves: ridge probes on frozen embeddings of a fixed labelled validation set, every N steps
of pretraining, next to a composition ridge on the same structures.

The tasks are entries of a probe suite (``conf/suite``); only their training and validation parts are read
(``SuiteData.task_graphs(..., scored="val")``), never a test part. Ridge is solved in closed form through one
SVD of the standardised training embeddings, its strength chosen by generalised cross-validation on the
training part alone.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

log = logging.getLogger(__name__)

ALPHAS = np.logspace(-3, 3, 13)  # ridge strengths tried, relative to the number of training rows


def ridge_gcv(x_train: np.ndarray, y_train: np.ndarray, x_scored: np.ndarray) -> tuple[np.ndarray, float]:
    """Predictions of a ridge on standardised features, its strength chosen by generalised cross-validation
    on the training rows. Returns ``(predictions [m], alpha)``."""
    mean, std = x_train.mean(0), x_train.std(0)
    keep = std > 1e-6 * max(1.0, float(np.abs(mean).max(initial=0.0)))  # constant up to round-off: dropped
    a = (x_train[:, keep] - mean[keep]) / std[keep]  # [n, F]
    b = (x_scored[:, keep] - mean[keep]) / std[keep]  # [m, F]
    centre = y_train.mean()
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    uty = u.T @ (y_train - centre)  # [r]
    n = len(y_train)
    best = None
    for alpha in ALPHAS * n:
        shrink = s**2 / (s**2 + alpha)  # [r]
        fitted = u @ (shrink * uty)
        residual = (y_train - centre) - fitted
        gcv = float(residual @ residual) / max(n - shrink.sum(), 1e-9) ** 2
        if best is None or gcv < best[0]:
            best = (gcv, alpha, shrink)
    _, alpha, _ = best
    weights = vt.T @ (s / (s**2 + alpha) * uty)  # [F]
    return b @ weights + centre, float(alpha / n)


class OnlineProbe(pl.Callback):
    """Logs ``online/<task>_mae`` and ``online/<task>_ratio`` (the MAE over a composition ridge's on the same
    structures) every ``every_n_steps`` training steps and at the end of training; writes
    ``online_probe.csv`` and ``online_probe.png`` (quality against steps and wall time) into the run
    directory. The metrics reach every logger and can be monitored by ``ModelCheckpoint``.

    Args:
        suite: a suite's name in ``conf/suite`` or its config (``{"tasks": {name: task}}``).
        data_dir: the folder the suite's files are in.
        tasks: the suite's tasks to probe (default: all whose file exists).
        every_n_steps: steps between two probes.
        max_train: training structures per task (a seeded subsample of its training part).
        max_val: validation structures per task.
        pooling: the readout probed (e.g. ``mean+std+max``; None: the encoder's own).
        layers: ``all`` to pool every layer's features (None: the encoder's own).
        output_dir: where the CSV and the figure go (None: no files).
        batch_size: structures per forward pass.
    """

    def __init__(
        self,
        suite: str | dict,
        data_dir: str,
        tasks: list[str] | None = None,
        every_n_steps: int = 250,
        max_train: int = 2000,
        max_val: int = 500,
        pooling: str | None = None,
        layers: str | None = None,
        output_dir: str | None = None,
        batch_size: int = 128,
    ):
        if every_n_steps < 1:
            raise ValueError(f"online_probe.every_n_steps must be at least 1, got {every_n_steps}")
        if isinstance(suite, str):
            from omegaconf import OmegaConf

            from contrast import CONFIG_DIR

            suite = OmegaConf.to_container(
                OmegaConf.load(CONFIG_DIR / "suite" / f"{suite}.yaml"), resolve=True
            )
        self.suite, self.task_names = {**dict(suite), "data_dir": str(data_dir)}, tasks
        self.every_n_steps, self.max_train, self.max_val = int(every_n_steps), int(max_train), int(max_val)
        self.pooling, self.layers, self.batch_size = pooling, layers, int(batch_size)
        self.output_dir = Path(output_dir) if output_dir else None
        self.rows: list[dict[str, float]] = []
        self._data: dict[str, dict[str, Any]] | None = None
        self._started = time.perf_counter()

    # -- data --
    def specs(self) -> list:
        """The suite tasks to probe, checked before training starts.

        Raises:
            ValueError: a named task that is not in the suite or whose file is not in ``data_dir``, or no task
                with its file there.
        """
        from contrast.evaluation.suite import parse_suite

        data_dir = Path(self.suite["data_dir"])
        specs = [s for s in parse_suite(self.suite["tasks"]) if (data_dir / s.file).is_file()]
        if self.task_names is not None:
            specs = [s for s in specs if s.name in self.task_names]
            missing = sorted(set(self.task_names) - {s.name for s in specs})
            if missing:
                raise ValueError(
                    f"online_probe.tasks {missing}: not in the suite, or their files are not in {data_dir}"
                )
        if not specs:
            raise ValueError(f"online_probe: no task of the suite has its file in {data_dir}")
        return specs

    def _prepare(self, cutoff: float) -> dict[str, dict[str, Any]]:
        from contrast.evaluation.probes.baselines import composition_features
        from contrast.evaluation.suite import SuiteData

        data_dir = Path(self.suite["data_dir"])
        specs = [
            dataclasses.replace(s, max_train=self.max_train, max_test=self.max_val) for s in self.specs()
        ]
        suite = SuiteData(specs, data_dir, cutoff, self.suite.get("cache_dir"))
        data, shared = {}, {}  # tasks on the same structures share their graph lists (embedded once)
        for spec in specs:
            if spec.graphs_key not in shared:
                graphs = suite.task_graphs([spec], scored="val")  # train and val parts only
                shared[spec.graphs_key] = (list(graphs.train), list(graphs.test), graphs)
            train, val, graphs = shared[spec.graphs_key]
            y_train = np.array([float(g[spec.label]) for g in train])
            y_val = np.array([float(g[spec.label]) for g in val])
            fractions = [composition_features(part) for part in (train, val)]
            predictions, _ = ridge_gcv(fractions[0], y_train, fractions[1])
            baseline = float(np.abs(predictions - y_val).mean())
            data[spec.name] = {
                "train": train,
                "val": val,
                "y_train": y_train,
                "y_val": y_val,
                "base": baseline,
                "positions": {"train": graphs.train.positions, "val": graphs.test.positions},
            }
            log.info(
                "online probe %s: %d train, %d val structures; composition ridge MAE %.4f %s",
                spec.name,
                len(train),
                len(val),
                baseline,
                spec.unit,
            )
        return data

    # -- probing --
    @torch.no_grad()
    def probe(self, encoder: torch.nn.Module) -> dict[str, float]:
        """Each task's validation MAE and its ratio to the composition ridge, with the encoder as it is."""
        from contrast.nn.base import check_pooling, check_readout_layers
        from contrast.pretrained import embed

        if self._data is None:
            self._data = self._prepare(float(encoder.cutoff))
        probed = copy.deepcopy(encoder).eval()
        if self.pooling is not None:
            probed.pooling = check_pooling(self.pooling)
        if self.layers is not None:
            probed.readout_layers = check_readout_layers(self.layers)
        metrics, embedded = {}, {}
        for name, task in self._data.items():
            for part in ("train", "val"):
                if id(task[part]) not in embedded:
                    rows = embed(probed, task[part], batch_size=self.batch_size, progress=False)
                    embedded[id(task[part])] = rows.double().numpy()
            x_train, x_val = embedded[id(task["train"])], embedded[id(task["val"])]
            predictions, _ = ridge_gcv(x_train, task["y_train"], x_val)
            mae = float(np.abs(predictions - task["y_val"]).mean())
            metrics[f"online/{name}_mae"] = mae
            metrics[f"online/{name}_ratio"] = mae / task["base"]
        return metrics

    def _run(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics, prepare_s, probe_s = {}, 0.0, 0.0
        if trainer.is_global_zero:
            started = time.perf_counter()
            if self._data is None:  # read the tasks' structures once (not counted as probing time)
                self._data = self._prepare(float(pl_module.encoder.cutoff))
                prepare_s = time.perf_counter() - started
                started = time.perf_counter()
            metrics = self.probe(pl_module.encoder)
            probe_s = time.perf_counter() - started
            wall = time.perf_counter() - self._started
            row = {"step": trainer.global_step, "wall_s": wall, "probe_s": probe_s, "prepare_s": prepare_s}
            row.update(metrics)
            self.rows.append(row)
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)
            self._write()
        for key, value in metrics.items():  # for ModelCheckpoint(monitor=...) and metrics.json
            trainer.callback_metrics[key] = torch.tensor(value)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            was_training = pl_module.training
            self._run(trainer, pl_module)
            pl_module.train(was_training)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.rows or self.rows[-1]["step"] != trainer.global_step:
            self._run(trainer, pl_module)

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict) -> None:
        self.rows = list(state_dict.get("rows", []))

    # -- files --
    def _write(self) -> None:
        if self.output_dir is None or not self.rows:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        names = sorted({key for row in self.rows for key in row})
        with open(self.output_dir / "online_probe.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=names)
            writer.writeheader()
            writer.writerows(self.rows)
        self._plot()

    def _plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ratios = sorted(k for k in self.rows[0] if k.endswith("_ratio"))
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
        for key in ratios:
            values = [row.get(key, np.nan) for row in self.rows]
            label = key.removeprefix("online/").removesuffix("_ratio")
            axes[0].plot([row["step"] for row in self.rows], values, marker="o", label=label)
            axes[1].plot([row["wall_s"] / 60 for row in self.rows], values, marker="o", label=label)
        axes[0].set_xlabel("training step")
        axes[1].set_xlabel("wall time (min)")
        axes[0].set_ylabel("ridge MAE / composition ridge MAE (val)")
        axes[0].legend(fontsize=8)
        for ax in axes:
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(self.output_dir / "online_probe.png", dpi=120)
        plt.close(fig)
