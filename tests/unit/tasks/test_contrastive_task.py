"""ContrastiveTask wiring: a learnt temperature outside weight decay; dataset indices reach the loss."""

from __future__ import annotations

import pytest
import torch
from ase.build import bulk
from torch_geometric.data import Batch

import contrast
from contrast.losses import info_nce
from contrast.tasks.contrastive import ContrastiveTask

ENCODER = {"_target_": "contrast.nn.schnet.SchNet", "hidden_dim": 8, "num_layers": 1, "cutoff": 4.0}
PROJECTOR = {"_target_": "contrast.nn.heads.ProjectionHead", "hidden_dim": 8, "out_dim": 4}
OPTIMIZER = {"_target_": "torch.optim.AdamW", "lr": 1e-3, "weight_decay": 1e-4}
INFONCE = {"_target_": "contrast.losses.InfoNCELoss", "temperature": 0.2}


def task(loss: dict) -> ContrastiveTask:
    torch.manual_seed(0)
    return ContrastiveTask(encoder=ENCODER, projector=PROJECTOR, loss=loss, optimizer=OPTIMIZER).double()


def test_learnt_temperature_is_not_weight_decayed():
    module = task({**INFONCE, "learnable_temperature": True})
    optimizer = module.configure_optimizers()
    temperature = module.loss_fn.log_temperature
    (group,) = [g for g in optimizer.param_groups if any(p is temperature for p in g["params"])]
    assert group["weight_decay"] == 0.0 and len(group["params"]) == 1
    others = [g for g in optimizer.param_groups if g is not group]
    assert others and all(g["weight_decay"] == 1e-4 for g in others)
    grouped = [p for g in optimizer.param_groups for p in g["params"]]
    assert len(grouped) == len({id(p) for p in grouped})
    assert {id(p) for p in grouped} == {id(p) for p in module.parameters()}


def test_without_loss_parameters_every_parameter_keeps_the_weight_decay():
    module = task(INFONCE)
    (group,) = module.configure_optimizers().param_groups
    assert group["weight_decay"] == 1e-4
    assert {id(p) for p in group["params"]} == {id(p) for p in module.parameters()}


@pytest.fixture(scope="module")
def views():
    """Three crystals, the third a padded copy of the first (idx 0 twice); second views slightly moved."""
    dataset = contrast.load_dataset([bulk("Cu", "fcc", a=3.6), bulk("Si", "diamond", a=5.43)], cutoff=4.0)
    graphs = [dataset[0], dataset[1], dataset[0]]
    assert [int(g.idx) for g in graphs] == [0, 1, 0]
    view_a = Batch.from_data_list(graphs)
    g = torch.Generator().manual_seed(2)
    moved = []
    for graph in graphs:
        graph = graph.clone()
        graph.pos = graph.pos + 0.05 * torch.randn(graph.pos.shape, generator=g, dtype=graph.pos.dtype)
        moved.append(graph)
    return view_a, Batch.from_data_list(moved)


def _projections(module: ContrastiveTask, views):
    view_a, view_b = (v.clone() for v in views)
    for v in (view_a, view_b):
        v.pos, v.cell = v.pos.double(), v.cell.double()
    with torch.no_grad():
        z_a = module.projector(module.encoder.embed(view_a))
        z_b = module.projector(module.encoder.embed(view_b))
    return (view_a, view_b), z_a, z_b


def test_step_passes_the_dataset_indices_to_infonce(views):
    module = task(INFONCE)
    batch, z_a, z_b = _projections(module, views)
    with torch.no_grad():
        loss = module._step(batch, "train")
    expected = info_nce(z_a, z_b, 0.2, ids=torch.tensor([0, 1, 0]))
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=0)
    assert abs(float(expected - info_nce(z_a, z_b, 0.2))) > 1e-6


@pytest.mark.parametrize("target", ["contrast.losses.BarlowTwinsLoss", "contrast.losses.VICRegLoss"])
def test_step_gives_no_ids_to_losses_without_them(views, target):
    module = task({"_target_": target})
    batch, z_a, z_b = _projections(module, views)
    with torch.no_grad():
        loss = module._step(batch, "train")
    torch.testing.assert_close(loss, module.loss_fn(z_a, z_b), rtol=1e-12, atol=0)


def test_pretraining_refuses_the_every_layer_readout():
    with pytest.raises(ValueError, match="readout_layers=last"):
        ContrastiveTask(
            encoder={**ENCODER, "readout_layers": "all"},
            projector=PROJECTOR,
            loss=INFONCE,
            optimizer=OPTIMIZER,
        )
