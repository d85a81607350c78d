"""``task.scheduler.kind=cosine_time``: warm-up and cosine decay over the wall-clock budget."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

import contrast
from contrast.tasks.schedules import WallClockCosine, wall_clock_cosine


def test_the_factor_warms_up_then_follows_a_cosine_to_the_floor():
    assert wall_clock_cosine(0.0, 0.1, 0.01) == pytest.approx(0.01)
    assert wall_clock_cosine(0.05, 0.1, 0.01) == pytest.approx(0.01 + 0.99 * 0.5)
    assert wall_clock_cosine(0.1, 0.1, 0.01) == pytest.approx(1.0)
    # halfway through the decay: the mean of 1 and the floor
    assert wall_clock_cosine(0.55, 0.1, 0.01) == pytest.approx((1.0 + 0.01) / 2)
    assert wall_clock_cosine(1.0, 0.1, 0.01) == pytest.approx(0.01)
    assert wall_clock_cosine(1.7, 0.1, 0.01) == pytest.approx(0.01)  # past the budget: stays at the floor
    # without warm-up, by hand at a quarter of the budget
    expected = 0.0 + 1.0 * 0.5 * (1.0 + math.cos(math.pi * 0.25))
    assert wall_clock_cosine(0.25, 0.0, 0.0) == pytest.approx(expected)


def test_the_scheduler_scales_every_group_by_the_factor_of_its_progress():
    weights = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))]
    optimizer = torch.optim.SGD([{"params": [weights[0]], "lr": 1.0}, {"params": [weights[1]], "lr": 0.5}])
    scheduler = WallClockCosine(optimizer, warmup_fraction=0.0, min_lr_ratio=0.1)
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([1.0, 0.5])
    for progress in (0.3, 0.6, 1.0):
        optimizer.step()
        scheduler.progress = progress
        scheduler.step()
        factor = wall_clock_cosine(progress, 0.0, 0.1)
        assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([factor, 0.5 * factor])
    with pytest.raises(ValueError, match="warmup_fraction"):
        WallClockCosine(optimizer, warmup_fraction=1.0, min_lr_ratio=0.1)


def _energy_run(tmp_path, overrides):
    return contrast.run_training(
        [
            "task=energy",
            "data.max_structures=24",
            "data.batch_size=4",
            "encoder=schnet",
            "encoder.hidden_dim=16",
            "encoder.num_layers=1",
            "task.scheduler.kind=cosine_time",
            "+task.scheduler.warmup_fraction=0.05",
            "task.scheduler.min_lr_ratio=0.01",
            "task.optimizer.lr=1e-3",
            "trainer.log_every_n_steps=1",
            *overrides,
        ],
        run_dir=tmp_path / "run",
    )


class _TickingClock:
    """A stand-in for the ``time`` module of Lightning's ``Timer``: each reading advances 0.05 s, so the
    budget is spent in a fixed number of steps however loaded the machine is."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        self.now += 0.05
        return self.now


def test_a_budgeted_run_ends_near_the_floor_with_the_rate_falling(tmp_path, monkeypatch):
    monkeypatch.setattr(pl.callbacks.timer, "time", _TickingClock())
    _energy_run(tmp_path, ["trainer.max_epochs=100000", "trainer.max_time=00:00:00:08"])
    rows = list(csv.DictReader(open(tmp_path / "run" / "logs" / "metrics.csv")))
    rates = np.array([float(row["lr"]) for row in rows if row.get("lr")])
    assert len(rates) > 20
    peak = int(np.argmax(rates))
    assert rates[peak] <= 1e-3 * (1 + 1e-6)
    # after the warm-up the rate never rises, and the budget's end leaves it within 10% of the peak's floor
    assert np.all(np.diff(rates[peak:]) <= 1e-12)
    assert rates[-1] < 0.1 * 1e-3


def test_a_run_without_a_budget_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="trainer.max_time"):
        _energy_run(tmp_path, ["trainer.max_epochs=1"])
