"""A training loss that turns NaN or infinite stops the run with a clear error instead of training on for the
rest of the budget and writing NaN metrics and weights."""

from __future__ import annotations

import pytest
import torch

from contrast.tasks.base import TrainingDiverged, check_finite_loss


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_loss_is_refused_with_where_and_what_to_change(value):
    with pytest.raises(
        TrainingDiverged, match=r"epoch 3, step 120 \(batch 7\).*task.optimizer.lr.*gradient_clip_val"
    ):
        check_finite_loss(torch.tensor(value), 3, 120, 7)
    check_finite_loss(torch.tensor(0.25), 3, 120, 7)  # a finite loss passes


def test_a_run_whose_loss_turns_nan_stops_at_that_step(quiet_trainer, tiny_energy_task, emt_cu_energy_data):
    datamodule = emt_cu_energy_data(16, (0.75, 0.25, 0.0), batch_size=4)
    task = tiny_energy_task(restore_best=False)
    steps = []
    honest_step = task._step

    def step_that_blows_up(batch, stage):
        loss = honest_step(batch, stage)
        if stage == "train":
            steps.append(len(steps))
            if len(steps) == 5:  # the fifth training batch: the second of the second epoch
                return loss * float("nan")
        return loss

    task._step = step_that_blows_up
    trainer = quiet_trainer(4)
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step 4 \(batch 1\)"):
        trainer.fit(task, datamodule=datamodule)
    assert len(steps) == 5  # nothing trained after the bad step


def test_under_ddp_a_finite_process_stops_too_when_another_diverged():
    check_finite_loss(torch.tensor(0.25), 2, 50, 3, finite_everywhere=True)
    with pytest.raises(TrainingDiverged, match=r"another process is not finite at epoch 2, step 50"):
        check_finite_loss(torch.tensor(0.25), 2, 50, 3, finite_everywhere=False)
    with pytest.raises(TrainingDiverged, match=r"the training loss is nan"):
        check_finite_loss(torch.tensor(float("nan")), 2, 50, 3, finite_everywhere=False)


def test_the_training_step_asks_every_process_when_there_are_several(tiny_energy_task):
    task = tiny_energy_task()
    decisions = []

    class Strategy:
        def reduce_boolean_decision(self, decision, all=True):
            decisions.append((decision, all))
            return False  # another process saw a NaN

    class Trainer:
        world_size = 2
        strategy = Strategy()
        current_epoch = 1
        global_step = 9

    task._trainer = Trainer()
    task._step = lambda batch, stage: torch.tensor(0.5)
    with pytest.raises(TrainingDiverged, match=r"another process is not finite at epoch 1, step 9"):
        task.training_step(None, 0)
    assert decisions == [(True, True)]
