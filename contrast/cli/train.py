"""Entry point: ``python -m contrast.train [overrides]`` (Hydra; configs in ``contrast/conf/``).

``task=contrastive|probe|energy`` picks the LightningModule; its class decides what the data module needs
(views, targets) through ``run_setup``. Every run writes ``checkpoints/last.ckpt``, ``metrics.json``,
``config.yaml`` (resolved) and ``splits.json`` into its Hydra run directory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from contrast import CONFIG_DIR
from contrast.nn.runtime import tune_cpu_allocator
from contrast.tasks.callbacks import FinalCheckpoint, MetricsJSON, RestoreBest

log = logging.getLogger("contrast.train")


def build_datamodule(cfg: DictConfig, output_dir: Path, **extra: Any) -> pl.LightningDataModule:
    """The data module of ``cfg.data``; ``data.path`` (the documented override) wins over ``data.source``."""
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    path = data_cfg.pop("path", None)
    if path is not None:
        data_cfg["source"] = path
    if data_cfg.get("targets") and "targets" in extra:
        extra.pop("targets")  # the user's data.targets wins over the task's default
    data_cls = get_class(data_cfg.pop("_target_"))
    return data_cls(**{**data_cfg, **extra}, output_dir=str(output_dir))


def graph_cutoff(cfg: DictConfig, encoder_cutoff: float, view_transform: Any = None) -> float:
    """The one cutoff of a run: the encoder's (the checkpoint's when the task starts from one).

    Graphs built at another radius than the encoder's envelope make the energy jump where an atom crosses the
    graph's cutoff, so ``data.cutoff`` (null: the encoder's) and the views' cutoffs must agree with it.

    Raises:
        ValueError: naming both cutoffs and what to change.
    """
    encoder_cutoff = float(encoder_cutoff)
    data_cutoff = OmegaConf.select(cfg, "data.cutoff")
    checkpoint = OmegaConf.select(cfg, "task.checkpoint")
    owner = f"the checkpoint {checkpoint}" if checkpoint else "the encoder"
    if data_cutoff is not None and abs(float(data_cutoff) - encoder_cutoff) > 1e-9:
        raise ValueError(
            f"data.cutoff={data_cutoff} Å but {owner} uses a cutoff of {encoder_cutoff} Å: graphs and the "
            f"encoder's envelope must share one cutoff (drop data.cutoff, or set it to {encoder_cutoff})"
        )
    for name in ("view_a", "view_b"):
        view_cutoff = getattr(getattr(view_transform, name, None), "cutoff", None)
        if view_cutoff is not None and abs(float(view_cutoff) - encoder_cutoff) > 1e-9:
            raise ValueError(
                f"augment.{name}.cutoff={view_cutoff} Å but {owner} uses {encoder_cutoff} Å: views must be "
                "built at the encoder's cutoff (the augment configs follow data.cutoff)"
            )
    return encoder_cutoff


def build_trainer(cfg: DictConfig, output_dir: Path, metrics: MetricsJSON) -> pl.Trainer:
    """The Lightning trainer of ``cfg.trainer`` with the checkpoint, learning-rate and metrics callbacks."""
    checkpoints = FinalCheckpoint(
        dirpath=output_dir / "checkpoints",
        filename="epoch{epoch:03d}",
        auto_insert_metric_name=False,
        save_last=True,
        save_top_k=1,
    )
    callbacks = [checkpoints, metrics]
    if cfg.get("online_probe"):
        probe = online_probe(cfg, output_dir)
        if probe is not None:
            callbacks.append(probe)
    logger = False
    if cfg.get("logger") and cfg.logger.get("_target_"):
        logger = instantiate(cfg.logger)
    return instantiate(cfg.trainer, callbacks=callbacks, logger=logger, _convert_="all")


def online_probe(cfg: DictConfig, output_dir: Path) -> pl.Callback | None:
    """The online quality curves of ``cfg.online_probe`` (ridge probes on a suite's validation parts every N
    steps), its tasks checked before training. ``data_dir: null`` is the folder of ``data.path``; when the
    tasks' files are not there, the run goes on without the curves and says so (a ``data_dir`` given
    explicitly must hold them: an error)."""
    from contrast.tasks.online_probe import OnlineProbe

    options = OmegaConf.to_container(cfg.online_probe, resolve=True)
    inferred = options.get("data_dir") is None
    if inferred:
        path = OmegaConf.select(cfg, "data.path")
        if not isinstance(path, str):
            log.warning(
                "online_probe: data.path is not one file, so no folder to find the tasks in: no curves"
            )
            return None
        options["data_dir"] = str(Path(path).expanduser().resolve().parent)
    probe = OnlineProbe(**options, output_dir=str(output_dir))
    try:
        probe.specs()
    except ValueError as error:
        if not inferred:
            raise
        log.warning("%s: the run goes on without online quality curves (set online_probe.data_dir)", error)
        return None
    return probe


def resolve_checkpoint(cfg: DictConfig, output_dir: Path) -> str | None:
    """The checkpoint to resume from: ``ckpt_path``, ``last`` in this run directory, or auto-resume."""
    last = output_dir / "checkpoints" / "last.ckpt"
    if cfg.get("ckpt_path") == "last":
        if not last.exists():
            raise FileNotFoundError(
                f"ckpt_path=last: no {last}; pass hydra.run.dir=<the run directory to resume> as well"
            )
        return str(last)
    if cfg.get("ckpt_path"):
        return str(cfg.ckpt_path)
    if cfg.get("auto_resume") and last.exists():
        log.info("resuming from %s", last)
        return str(last)
    return None


def check_resume_checkpoint(path: str) -> None:
    """Refuse a checkpoint to resume from that would run code: a pickle beyond plain data, or
    hyper-parameters naming a ``_target_`` outside the task allow-list (at any depth).

    Raises:
        CheckpointError: naming the file and the reason (the disallowed target and where it sits).
    """
    from contrast.pretrained.checkpoint import TASK_PREFIXES, CheckpointError, check_targets, read_checkpoint

    checkpoint = read_checkpoint(path, required_keys=("state_dict",))
    try:
        check_targets(checkpoint.get("hyper_parameters", {}), TASK_PREFIXES, "hyper_parameters")
    except CheckpointError as error:
        raise CheckpointError(error.reason, path) from None


def run(cfg: DictConfig, output_dir: str | Path) -> dict[str, Any]:
    """Train the task of ``cfg`` and write its outputs into ``output_dir``; returns the metrics summary."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    resume_from = resolve_checkpoint(cfg, output_dir)
    if resume_from is not None:
        check_resume_checkpoint(resume_from)
    pl.seed_everything(int(cfg.seed), workers=True)
    if cfg.get("tune_cpu_allocator", True):
        tune_cpu_allocator()

    task_cls = get_class(cfg.task._target_)
    with open_dict(cfg):
        if "cutoff" in cfg.encoder and OmegaConf.select(cfg, "encoder.cutoff") is None:
            del cfg.encoder["cutoff"]  # `data.cutoff: null` and no checkpoint: the encoder class's default
    module, data_extra = task_cls.run_setup(cfg)
    cutoff = graph_cutoff(cfg, module.encoder.cutoff, data_extra.get("view_transform"))
    with open_dict(cfg):
        cfg.data.cutoff = cutoff  # config.yaml records the cutoff the graphs were built at
    OmegaConf.save(cfg, output_dir / "config.yaml", resolve=True)
    datamodule = build_datamodule(cfg, output_dir, **data_extra)
    metrics = MetricsJSON(output_dir)
    trainer = build_trainer(cfg, output_dir, metrics)

    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    _save_restored_best(trainer, output_dir, metrics)
    if cfg.get("test_after_fit") and _has_test_split(datamodule):
        trainer.test(module, datamodule=datamodule, verbose=False)
    if getattr(datamodule, "leakage", None):
        metrics.add("leakage_guard", datamodule.leakage)
    sources = datamodule.source_report() if hasattr(datamodule, "source_report") else None
    if sources:
        metrics.add("sources", sources)  # per source: size, splits, probability, structures drawn
    if hasattr(module, "after_fit"):
        module.after_fit(trainer, datamodule, metrics, output_dir)
    metrics.write(trainer)
    summary = metrics.summary()
    if trainer.is_global_zero:
        _report(summary, output_dir)
    return summary


def _save_restored_best(trainer: pl.Trainer, output_dir: Path, metrics: MetricsJSON) -> None:
    """When a task restored its best validation weights after fitting, save them as ``checkpoints/best.ckpt``
    (``last.ckpt`` keeps the last epoch's, for resuming) and say which epoch they are from."""
    for callback in trainer.callbacks:
        if isinstance(callback, RestoreBest) and callback.best_state is not None:
            trainer.save_checkpoint(output_dir / "checkpoints" / "best.ckpt")
            metrics.add(
                "restored_best",
                {
                    "epoch": callback.best_epoch,
                    callback.monitor: callback.best_value,
                    "checkpoint": "best.ckpt",
                },
            )


def _has_test_split(datamodule) -> bool:
    test_set = getattr(datamodule, "test_set", None)
    return test_set is not None and len(test_set) > 0


def _report(summary: dict[str, Any], output_dir: Path) -> None:
    first, last = summary.get("first_epoch", {}), summary.get("last_epoch", {})
    for key in ("train_loss", "val_loss"):
        if key in first and key in last:
            print(f"{key}: first epoch {first[key]:.4f} -> last epoch {last[key]:.4f}")
    for key, value in sorted(summary.get("test", {}).items()):
        print(f"{key}: {value:.4f}")
    print(f"run directory: {output_dir}")


def run_training(overrides: list[str] | None = None, run_dir: str | Path = "runs/notebook") -> dict[str, Any]:
    """Run ``python -m contrast.train <overrides>`` in this process (for notebooks and scripts).

    Args:
        overrides: Hydra overrides, e.g. ``["experiment=smoke", "task=energy"]``.
        run_dir: the run directory (``checkpoints/last.ckpt`` and ``metrics.json`` land there).

    Returns:
        The metrics summary that is also written to ``metrics.json``.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(run_dir).resolve()
    overrides = [*(overrides or []), f"paths.output_dir={run_dir}", f"hydra.run.dir={run_dir}"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return run(cfg, run_dir)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    summary = run(cfg, HydraConfig.get().runtime.output_dir)
    # A number for Hydra sweepers that optimise: the last validation (else training) loss.
    last = summary.get("last_epoch", {})
    return last.get("val_loss", last.get("train_loss"))


if __name__ == "__main__":
    main()
