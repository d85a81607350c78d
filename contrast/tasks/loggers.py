"""Experiment trackers for ``logger=tensorboard|wandb``, built with a clear message when a package is missing.

Lightning's loggers import their tracker only when they are built and then fail with a bare
``ModuleNotFoundError``; these factories check first and name the ``contrast`` extra that installs it.
Both write into the run directory (``save_dir`` in ``conf/logger/``), like the CSV logger.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__all__ = ["tensorboard_logger", "wandb_logger"]


def _require(packages: tuple[str, ...], logger: str, extra: str) -> None:
    """Import the first of ``packages`` that is installed, else raise naming the extra to install."""
    for package in packages:
        try:
            importlib.import_module(package)
            return
        except ImportError:
            continue
    raise ImportError(f"logger={logger} needs the {packages[0]} package: pip install -e '.[{extra}]'")


def tensorboard_logger(save_dir: str | os.PathLike, **kwargs: Any):
    """Lightning's ``TensorBoardLogger``: event files under ``save_dir/<name>/<version>``.

    Args:
        save_dir: the run directory.
        **kwargs: passed on (``name``, ``version``, ``default_hp_metric``, ...).

    Raises:
        ImportError: neither ``tensorboard`` nor ``tensorboardX`` is installed (names the extra).
    """
    _require(("tensorboard", "tensorboardX"), "tensorboard", "tensorboard")
    from pytorch_lightning.loggers import TensorBoardLogger

    return TensorBoardLogger(save_dir=os.fspath(save_dir), **kwargs)


def wandb_logger(save_dir: str | os.PathLike, offline: bool = True, **kwargs: Any):
    """Lightning's ``WandbLogger``; offline by default, so a run needs no network or account.

    An offline run is written to ``save_dir/wandb/offline-run-<time>-<id>/``; upload it later with
    ``wandb sync <that folder>``.

    Args:
        save_dir: the run directory.
        offline: keep the run on disk (``false`` streams it to the W&B server; log in first).
        **kwargs: passed on (``project``, ``name``, ``entity``, ``tags``, ``log_model``, ...).

    Raises:
        ImportError: ``wandb`` is not installed (names the extra).
    """
    _require(("wandb",), "wandb", "wandb")
    from pytorch_lightning.loggers import WandbLogger

    os.makedirs(save_dir, exist_ok=True)  # wandb falls back to a temporary folder when save_dir is missing
    return WandbLogger(save_dir=os.fspath(save_dir), offline=offline, **kwargs)
