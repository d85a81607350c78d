"""``task.loss_kind`` of the energy head: the Huber penalty is squared below ``huber_delta`` and linear above
it, checked against a hand computation of the loss of one batch."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch


def _huber(error: torch.Tensor, delta: float) -> torch.Tensor:
    small = error.abs() <= delta
    return torch.where(small, 0.5 * error**2, delta * (error.abs() - 0.5 * delta)).mean()


@pytest.mark.parametrize("kind", ["mse", "huber"])
def test_the_training_loss_is_the_weighted_penalty_of_energy_and_force_errors(
    kind, tiny_energy_task, emt_cu_energy_data
):
    torch.manual_seed(0)
    weights = {"energy": 3.0, "forces": 0.5}
    task = tiny_energy_task(loss_weights=weights, loss_kind=kind, huber_delta=0.05)
    datamodule = emt_cu_energy_data(6, (1.0, 0.0, 0.0), batch_size=6)
    datamodule.setup("fit")
    batch = Batch.from_data_list([datamodule.train_set[i] for i in range(len(datamodule.train_set))])
    task.log = task.log_dict = lambda *args, **kwargs: None  # no trainer attached
    loss = task._step(batch, "train")
    out = task(batch, training=True)
    atoms = torch.bincount(batch.batch).double()
    energy_error = ((out["energy"] - batch.energy.view(-1)) / atoms).detach()
    force_error = (out["forces"] - batch.forces).detach()
    if kind == "mse":
        expected = 3.0 * (energy_error**2).mean() + 0.5 * (force_error**2).mean()
    else:
        assert (force_error.abs() > 0.05).any() and (force_error.abs() < 0.05).any()  # both regimes are used
        expected = 3.0 * _huber(energy_error, 0.05) + 0.5 * _huber(force_error, 0.05)
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)


def test_an_unknown_loss_kind_or_delta_is_refused(tiny_energy_task):
    with pytest.raises(ValueError, match="loss_kind"):
        tiny_energy_task(loss_kind="l1")
    with pytest.raises(ValueError, match="huber_delta"):
        tiny_energy_task(loss_kind="huber", huber_delta=0.0)
