"""``task.ema_decay`` on the energy head: the optimiser trains ``online``, ``model`` is its moving average,
and the average is what is validated, saved under ``model.*`` and loaded by the calculator."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch_geometric.data import Batch

from contrast.nn.forces import energy_forces_stress
from contrast.pretrained.checkpoint import energy_model_from_checkpoint
from contrast.tasks.averaging import update_average, warm_decay


def test_the_warm_decay_starts_low_and_settles():
    assert warm_decay(0.999, 0) == pytest.approx(0.1)
    assert warm_decay(0.999, 8) == pytest.approx(0.5)
    assert warm_decay(0.9, 10_000) == pytest.approx(0.9)


def test_one_update_moves_each_weight_by_one_minus_decay_and_copies_buffers(tiny_energy_task):
    task = tiny_energy_task(ema_decay=0.9)
    average, trained = task.model, task.online
    assert not any(p.requires_grad for p in average.parameters())
    assert all(p.requires_grad for p in trained.parameters())
    before = {name: p.clone() for name, p in average.named_parameters()}
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(torch.randn_like(p))
        trained.head.shift.fill_(0.37)
    expected = {name: 0.75 * before[name] + 0.25 * p for name, p in trained.named_parameters()}
    update_average([(average, trained)], 0.75)
    for name, p in average.named_parameters():
        torch.testing.assert_close(p, expected[name])
    assert float(average.head.shift) == pytest.approx(0.37)
    with pytest.raises(ValueError, match="ema_decay"):
        tiny_energy_task(ema_decay=1.0)


def test_the_average_is_validated_saved_and_loaded_by_the_calculator(
    quiet_trainer, tmp_path, tiny_energy_task, emt_cu_energy_data
):
    pl.seed_everything(0)
    datamodule = emt_cu_energy_data(24, (0.7, 0.3, 0.0), batch_size=4)
    task = tiny_energy_task(ema_decay=0.9, restore_best=False)
    trainer = quiet_trainer(2)
    trainer.fit(task, datamodule=datamodule)
    assert int(task.ema_updates) == trainer.global_step > 0
    # validation scores the average, computed here independently on the whole validation part
    validation = Batch.from_data_list([datamodule.val_set[i] for i in range(len(datamodule.val_set))])
    atoms = torch.bincount(validation.batch).double()

    def energy_mae(model):
        out = energy_forces_stress(model.eval(), validation, compute_forces=True, training=False)
        return ((out["energy"].detach().double() - validation.energy.double()) / atoms).abs().mean().item()

    reported = trainer.validate(task, datamodule=datamodule, verbose=False)[0]["val/energy_mae_per_atom"]
    assert reported == pytest.approx(energy_mae(task.model), rel=1e-4)
    assert abs(energy_mae(task.online) - energy_mae(task.model)) > 1e-7
    # the checkpoint keeps both copies; the calculator's loader reads the average (model.*)
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    checkpoint = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=True)
    assert any(key.startswith("online.") for key in checkpoint["state_dict"])
    loaded = energy_model_from_checkpoint(checkpoint, source="last.ckpt")
    for name, value in loaded.state_dict().items():
        torch.testing.assert_close(value, task.model.state_dict()[name])
    assert energy_mae(loaded) == pytest.approx(energy_mae(task.model), rel=1e-6)
