"""``python -m contrast.evaluate`` (console script ``contrast-evaluate``): score an encoder on a probe suite
next to its baselines; the work is :func:`contrast.evaluation.runner.evaluate`. Config:
``conf/evaluate.yaml``.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from contrast import CONFIG_DIR
from contrast.evaluation.report import results_markdown
from contrast.evaluation.runner import evaluate

__all__ = ["main"]


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    output_dir = Path(HydraConfig.get().runtime.output_dir)
    results = evaluate(
        cfg.checkpoint,
        cfg.suite,
        output_dir,
        seed=int(cfg.seed),
        cache_dir=cfg.get("cache_dir"),
        goals=tuple(cfg.get("goals") or ()),
        threads=cfg.get("threads"),
        pooling=cfg.get("pooling"),
        scored=cfg.get("scored", "test"),
        layers=cfg.get("layers"),
    )
    print(results_markdown(results))
    print(f"run directory: {output_dir}")
