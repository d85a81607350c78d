"""Layer-wise learning-rate decay follows each encoder's depth order, not its registration order."""

from __future__ import annotations

import pytest
import torch

from contrast.nn.cgcnn import CGCNN
from contrast.nn.painn import PaiNN
from contrast.nn.schnet import SchNet
from contrast.tasks.energy import EnergyTask
from contrast.tasks.schedules import layer_decay_groups

ENCODERS = {"cgcnn": CGCNN, "schnet": SchNet, "painn": PaiNN}
LR, DECAY, LAYERS = 1.0e-3, 0.8, 3


def _encoder_config(name: str) -> dict:
    target = f"{ENCODERS[name].__module__}.{ENCODERS[name].__name__}"
    return {"_target_": target, "hidden_dim": 8, "num_layers": LAYERS, "num_rbf": 4, "max_z": 30}


def _task(name: str) -> EnergyTask:
    optimizer = {"_target_": "torch.optim.AdamW", "lr": LR}
    return EnergyTask(encoder=_encoder_config(name), optimizer=optimizer, layer_decay=DECAY)


def _rate_of(groups: list[dict]) -> dict[int, float]:
    return {id(p): group["lr"] for group in groups for p in group["params"]}


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_blocks_cover_every_parameter_once(name):
    encoder = ENCODERS[name](hidden_dim=8, num_layers=LAYERS, num_rbf=4, max_z=30)
    blocks = encoder.blocks()
    assert len(blocks) == LAYERS + 1  # the embedding, then one block per layer
    in_blocks = [id(p) for modules in blocks for module in modules for p in module.parameters()]
    assert sorted(in_blocks) == sorted(id(p) for p in encoder.parameters())


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_multiplier_never_increases_from_output_to_input(name):
    task = _task(name)
    rate = _rate_of(task.parameter_groups())
    blocks = task.model.encoder.blocks()
    per_block = []
    for modules in blocks:
        rates = {rate[id(p)] for module in modules for p in module.parameters()}
        assert len(rates) == 1, f"{name}: the modules of one layer must share one rate, got {rates}"
        per_block.append(rates.pop())
    head_rate = {rate[id(p)] for p in task.model.head.parameters()}
    assert head_rate == {LR}
    # from the output (last block) down to the embedding: lr * decay, lr * decay^2, ...
    expected = [LR * DECAY ** (len(blocks) - k) for k in range(len(blocks))]
    assert per_block == pytest.approx(expected)
    assert all(a <= b for a, b in zip(per_block, per_block[1:]))


def test_painn_message_and_update_of_one_layer_share_a_rate():
    task = _task("painn")
    rate = _rate_of(task.parameter_groups())
    encoder = task.model.encoder
    last_message = {rate[id(p)] for p in encoder.messages[-1].parameters()}
    first_update = {rate[id(p)] for p in encoder.updates[0].parameters()}
    # registration order (all messages, then all updates) gave layer 3's message 0.41x, layer 1's update 0.51x
    assert len(last_message) == len(first_update) == 1
    last_message, first_update = last_message.pop(), first_update.pop()
    assert last_message == pytest.approx(LR * DECAY)
    assert first_update == pytest.approx(LR * DECAY**LAYERS)
    assert last_message > first_update


def test_frozen_parameters_are_left_out():
    encoder = PaiNN(hidden_dim=8, num_layers=2, num_rbf=4, max_z=30)
    encoder.embedding.requires_grad_(False)
    groups = layer_decay_groups(encoder, LR, DECAY)
    params = {id(p) for group in groups for p in group["params"]}
    assert id(encoder.embedding.weight) not in params
    assert len(groups) == 2
    assert all(isinstance(p, torch.nn.Parameter) for group in groups for p in group["params"])
