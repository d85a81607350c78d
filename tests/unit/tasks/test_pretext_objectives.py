"""Pretext objectives on a tiny batch: each loss falls and reaches the encoder; heads are equivariant."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from torch_geometric.data import Batch

from contrast.augment.corruption import displace_atoms, mask_species
from contrast.graph.convert import structure_to_graph
from contrast.losses.pretext import denoising_loss, masked_species_loss
from contrast.nn.pretext import DisplacementHead
from contrast.nn.schnet import SchNet
from contrast.tasks.contrastive import ContrastiveTask, objective_settings
from contrast.testing import random_rotation

CUTOFF = 4.0
ENCODER = {
    "_target_": "contrast.nn.schnet.SchNet",
    "hidden_dim": 16,
    "num_layers": 2,
    "num_rbf": 8,
    "cutoff": 4.0,
}


def _batch(rattle: float = 0.05, seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    crystals = [bulk("NaCl", "rocksalt", a=5.6), bulk("Si", "diamond", a=5.43), bulk("Cu", "fcc", a=3.6) * 2]
    graphs = []
    for k, atoms in enumerate(crystals):
        atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
        graph = structure_to_graph(atoms, cutoff=CUTOFF)
        graph.idx = torch.tensor([k])
        graphs.append(graph)
    return Batch.from_data_list(graphs)


def _task(denoising: float, masking: float, contrastive: float = 1.0) -> ContrastiveTask:
    torch.manual_seed(0)
    return ContrastiveTask(
        encoder=ENCODER,
        projector={"_target_": "contrast.nn.heads.ProjectionHead", "hidden_dim": 16, "out_dim": 8},
        loss={"_target_": "contrast.losses.InfoNCELoss", "temperature": 0.1},
        optimizer={"_target_": "torch.optim.Adam", "lr": 3e-3},
        objectives={
            "contrastive": contrastive,
            "denoising": {"weight": denoising, "sigma": 0.1},
            "masking": {"weight": masking, "fraction": 0.3},
        },
    )


@pytest.mark.parametrize(
    ("denoising", "masking", "term"), [(1.0, 0.0, "denoising_loss"), (0.0, 1.0, "masking_loss")]
)
def test_each_objective_falls_and_reaches_the_encoder(denoising, masking, term):
    task = _task(denoising, masking, contrastive=0.0)  # the pretext term alone
    views = [_batch(seed=1), _batch(seed=2)]
    logged = {}
    task.log_dict = lambda metrics, **kw: logged.update({k: float(v) for k, v in metrics.items()})
    task.log = lambda *a, **kw: None
    optimizer = torch.optim.Adam(task.parameters(), lr=3e-3)
    losses = []
    for step in range(40):
        optimizer.zero_grad()
        loss = task._step(views, "val")  # fixed corruption: the same task every step
        loss.backward()
        if step == 0:
            grads = [p.grad for p in task.encoder.parameters() if p.grad is not None]
            assert grads and any(g.abs().sum() > 0 for g in grads), "no gradient reached the encoder"
        optimizer.step()
        losses.append(logged[f"val/{term}"])
    assert losses[-1] < 0.7 * losses[0], losses


def test_displacement_head_is_equivariant_and_translation_invariant():
    torch.manual_seed(0)
    encoder = SchNet(hidden_dim=8, num_layers=1, num_rbf=8, cutoff=CUTOFF).double()
    head = DisplacementHead(8, cutoff=CUTOFF, hidden_dim=8, num_rbf=8).double()
    atoms = bulk("NaCl", "rocksalt", a=5.6) * (1, 1, 2)
    atoms.positions += np.random.default_rng(0).normal(scale=0.1, size=atoms.positions.shape)
    rotation = random_rotation(np.random.default_rng(1))
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell[:] @ rotation.T, scale_atoms=False)
    rotated.positions = atoms.positions @ rotation.T
    shifted = atoms.copy()
    shifted.positions += np.array([0.3, -0.2, 0.7])

    def predict(structure):
        graph = structure_to_graph(structure, cutoff=CUTOFF, dtype=torch.float64)
        order = np.lexsort(graph.edge_index.numpy()[::-1])  # neighbour lists may list edges in any order
        return head(encoder(graph), graph), order

    base, _ = predict(atoms)
    turned, _ = predict(rotated)
    moved, _ = predict(shifted)
    torch.testing.assert_close(turned, base @ torch.as_tensor(rotation).T, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(moved, base, rtol=1e-9, atol=1e-10)
    assert base.abs().max() > 1e-6


def test_corruptions_leave_the_batch_alone_and_report_what_they_hid():
    batch = _batch()
    z, pos = batch.z.clone(), batch.pos.clone()
    generator = torch.Generator().manual_seed(0)
    masked_batch, index, species = mask_species(batch, 0.5, generator)
    assert torch.equal(batch.z, z) and index.numel() > 0
    assert torch.equal(species, z[index]) and (masked_batch.z[index] == 0).all()
    keep = torch.ones_like(z, dtype=torch.bool)
    keep[index] = False
    assert torch.equal(masked_batch.z[keep], z[keep])
    # atoms masked already are never targets
    again, index2, species2 = mask_species(masked_batch, 1.0, generator)
    assert (species2 > 0).all() and not set(index.tolist()) & set(index2.tolist())
    displaced, noise = displace_atoms(batch, 0.1, generator)
    assert torch.equal(batch.pos, pos)
    torch.testing.assert_close(displaced.pos - pos, noise)
    assert 0.05 < float(noise.std()) < 0.2


def test_pure_losses_against_hand_computations():
    predicted = torch.tensor([[0.1, 0.0, -0.2], [0.0, 0.3, 0.0]], dtype=torch.float64)
    noise = torch.tensor([[0.01, 0.02, 0.0], [0.0, 0.0, -0.01]], dtype=torch.float64)
    expected = (((0.1 - 0.1) ** 2 + (0 - 0.2) ** 2 + 0.2**2) + (0.3**2 + 0.1**2)) / 2
    assert float(denoising_loss(predicted, noise, 0.1)) == pytest.approx(expected)
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    species = torch.tensor([0, 2])
    expected = -0.5 * (np.log(np.exp(2) / (np.exp(2) + 2)) + np.log(np.e / (np.e + 2)))
    assert float(masked_species_loss(logits, species)) == pytest.approx(expected)


def test_objective_settings_fill_defaults_and_refuse_unknown_keys():
    settings = objective_settings({"denoising": {"weight": 0.5}})
    assert settings["denoising"] == {"weight": 0.5, "sigma": 0.1} and settings["masking"]["weight"] == 0.0
    with pytest.raises(ValueError, match="unknown objective"):
        objective_settings({"contrastiv": 1.0})
    with pytest.raises(ValueError, match="unknown settings"):
        objective_settings({"masking": {"fractoin": 0.1}})
    plain = _task(0.0, 0.0)
    assert not hasattr(plain, "displacement_head") and not hasattr(plain, "species_head")
