"""A quiet CPU ``Trainer`` for tests that fit tasks directly (no logger, no progress bar, no summary)."""

from __future__ import annotations

import pytorch_lightning as pl


def quiet_trainer(max_epochs: int, callbacks=(), **options) -> pl.Trainer:
    """A CPU trainer for ``max_epochs`` without checkpoints or sanity validation; gradients stay on in
    validation (forces are ``-dE/dpos``). ``options`` override any of these."""
    options = {
        "enable_checkpointing": False,
        "inference_mode": False,
        "num_sanity_val_steps": 0,
        **options,
    }
    return pl.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
        **options,
    )
