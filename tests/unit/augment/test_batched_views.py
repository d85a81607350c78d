"""Views made on a collated batch (``augment.on_device``): contract, invariances, determinism, statistics."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from augment_crystals import CUTOFF, make_graph, periodic_distances
from torch_geometric.data import Batch

from contrast.augment import (
    AtomMask,
    EdgeDrop,
    LatticeStrain,
    OriginShift,
    PositionNoise,
    RandomRotation,
    RandomSupercell,
    SiteRemoval,
    TwoViews,
    ViewDataset,
    ViewPipeline,
)
from contrast.augment.batched import (
    BatchedEdgeDrop,
    BatchedOriginShift,
    BatchedPipeline,
    BatchedPositionNoise,
    BatchedRotation,
    BatchedStrain,
    BatchedViews,
    StructureItems,
    rebuild_edges,
)
from contrast.graph.convert import CrystalArrays, StructureError, graph_edges
from contrast.nn.geometry import edge_vectors
from contrast.nn.painn import PaiNN


def structures(crystals) -> list:
    """The session crystals without their neighbour lists (what the structure store yields)."""
    out = []
    for name in ("rock_salt", "silicon", "triclinic"):
        graph = crystals[name].clone()
        del graph.edge_index, graph.cell_shift
        graph.num_nodes = graph.z.shape[0]  # as the structure store's items
        out.append(graph)
    return out


def collate(graphs) -> Batch:
    return Batch.from_data_list(graphs)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_contract(view, cutoff: float = CUTOFF, complete: bool = True) -> None:
    """The graph contract, and each structure's list equal to (``complete``) or within (edges dropped)
    vesin's for the view's own geometry."""
    n = view.z.shape[0]
    assert (
        view.z.dtype == torch.long and view.pos.shape == (n, 3) and view.cell.shape == (view.num_graphs, 3, 3)
    )
    assert view.edge_index.dtype == torch.long and view.edge_index.shape[0] == 2
    assert view.cell_shift.shape == (view.edge_index.shape[1], 3) and view.cell_shift.dtype == view.pos.dtype
    assert torch.equal(view.cell_shift, view.cell_shift.round())
    dist = edge_vectors(view).norm(dim=1)
    assert bool((dist < cutoff).all()) and bool((dist > 0.5).all())
    for key in ("energy", "forces", "stress"):
        assert key not in view
    for graph in view.to_data_list():
        crystal = CrystalArrays(graph.z.numpy(), graph.pos.double().numpy(), graph.cell[0].double().numpy())
        ref_index, ref_shift = graph_edges(crystal, cutoff)
        edges, reference = _edges(graph.edge_index, graph.cell_shift), _edges(ref_index, ref_shift)
        assert len(edges) == graph.edge_index.shape[1], "duplicate edges"
        if not complete:
            assert edges <= reference
            continue
        assert edges == reference
        np.testing.assert_allclose(
            np.sort(edge_vectors(graph).norm(dim=1).numpy()), periodic_distances(graph, cutoff), atol=1e-9
        )


def _edges(edge_index, shift) -> set[tuple]:
    j, i = np.asarray(edge_index)
    return {(int(a), int(b), *s) for a, b, s in zip(i, j, np.rint(np.asarray(shift)).astype(int).tolist())}


def per_structure_lengths(view) -> list[np.ndarray]:
    return [np.sort(edge_vectors(g).norm(dim=1).numpy()) for g in view.to_data_list()]


def test_rotated_views_keep_every_edge_length(crystals):
    batch = collate(structures(crystals))
    pipeline = BatchedPipeline([BatchedRotation(), BatchedOriginShift()], cutoff=CUTOFF)
    view = pipeline(batch, generator(0))
    assert_contract(view)
    assert not torch.allclose(view.cell, batch.cell)
    for lengths, graph in zip(per_structure_lengths(view), batch.to_data_list()):
        np.testing.assert_allclose(lengths, periodic_distances(graph), atol=1e-9)


def test_strain_deforms_edges_by_its_matrix(crystals):
    batch = rebuild_edges(collate(structures(crystals)), CUTOFF)
    strained = BatchedStrain(max_strain=0.05)(batch, generator(1))
    deformation = torch.linalg.solve(batch.cell, strained.cell)  # [B, 3, 3]: cell @ D
    assert torch.allclose(deformation, deformation.transpose(1, 2))
    eye = torch.eye(3, dtype=torch.float64)
    assert (deformation - eye).abs().max() <= 0.05 and (deformation - eye).abs().max() > 1e-3
    # the same edges, their vectors deformed: vec' = vec @ D of the target's structure
    moved = edge_vectors(batch, pos=strained.pos, cell=strained.cell)
    expected = torch.bmm(edge_vectors(batch).unsqueeze(1), deformation[batch.batch[batch.edge_index[1]]])
    torch.testing.assert_close(moved, expected.squeeze(1))
    assert not torch.allclose(moved.norm(dim=1), edge_vectors(batch).norm(dim=1))
    assert_contract(rebuild_edges(strained, CUTOFF))


def default_views(seed: int = 0) -> TwoViews:
    view_a = ViewPipeline(
        [
            RandomRotation(),
            OriginShift(),
            PositionNoise(sigma=0.05),
            LatticeStrain(p=0.8),
            SiteRemoval(p=0.5),
        ],
        [AtomMask(fraction=0.15), EdgeDrop(p=0.5)],
        CUTOFF,
    )
    view_b = ViewPipeline(
        [RandomRotation(), RandomSupercell(p=0.5, max_atoms=16, max_repeat=2), PositionNoise(sigma=0.02)],
        [],
        CUTOFF,
    )
    return TwoViews(view_a, view_b, seed)


def make_views(crystals, seed: int, epoch: int = 0):
    views = BatchedViews.from_two_views(default_views())
    dataset = views.wrap(structures(crystals))
    assert isinstance(dataset, ViewDataset)
    dataset.set_epoch(epoch)
    pairs = [dataset[k] for k in range(len(dataset))]
    batch = [collate([p[0] for p in pairs]), collate([p[1] for p in pairs])]
    return views(batch, views.generator(batch, epoch) if seed is None else generator(seed))


def test_both_views_follow_the_contract(crystals):
    view_a, view_b = make_views(crystals, seed=3)
    assert_contract(view_a, complete=False)  # view a drops edges
    assert_contract(view_b)
    for view in (view_a, view_b):
        assert torch.equal(view.idx, torch.tensor([0, 1, 2]))


def test_same_seed_same_views_and_other_seeds_differ(crystals):
    first, second = make_views(crystals, seed=None), make_views(crystals, seed=None)
    for a, b in zip(first, second):
        assert torch.equal(a.pos, b.pos) and torch.equal(a.edge_index, b.edge_index)
    other = make_views(crystals, seed=None, epoch=1)
    assert not torch.allclose(other[0].cell, first[0].cell)


def test_structures_without_per_item_transforms_pass_through(crystals):
    views = BatchedViews(
        BatchedPipeline([RandomRotation()], CUTOFF), BatchedPipeline([PositionNoise(sigma=0.02)], CUTOFF)
    )
    graphs = structures(crystals)
    dataset = views.wrap(graphs, fixed=True)
    assert isinstance(dataset, StructureItems) and dataset[1] is graphs[1]
    view_a, view_b = views(collate(graphs), generator(0))
    assert_contract(view_a)
    assert_contract(view_b)
    model = PaiNN(hidden_dim=8, num_layers=1, cutoff=CUTOFF, num_rbf=4).double()
    embeddings = [model.embed(view) for view in (view_a, view_b)]
    assert all(e.shape == (3, model.embedding_dim) and torch.isfinite(e).all() for e in embeddings)


def test_symmetric_edge_drop_drops_both_directions(crystals):
    batch = rebuild_edges(collate(structures(crystals)), CUTOFF)
    dropped = BatchedEdgeDrop(fraction=0.4)(batch, generator(2))
    kept = _edges(dropped.edge_index, dropped.cell_shift)
    assert 0 < len(kept) < batch.edge_index.shape[1]
    assert all((j, i, -a, -b, -c) in kept for i, j, a, b, c in kept)
    assert dropped.to_data_list()[2].edge_index.shape[1] == dropped._slice_dict["edge_index"].diff()[2]


def test_noise_and_rotation_statistics_match_the_per_item_transforms():
    rng = np.random.default_rng(0)
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    graphs = [make_graph([14] * 4, fcc, np.diag(rng.uniform(3.5, 4.5, 3)), idx=k) for k in range(300)]
    batch = collate(graphs)
    noisy = BatchedPositionNoise(sigma=0.05)(batch, generator(0))
    batched_std = float((noisy.pos - batch.pos).std())
    g = generator(0)
    item_std = float(torch.cat([PositionNoise(sigma=0.05)(d, g).pos - d.pos for d in graphs]).std())
    assert abs(batched_std - 0.05) < 0.003 and abs(item_std - 0.05) < 0.003

    for max_angle in (180.0, 40.0):
        rotated = BatchedRotation(max_angle=max_angle)(batch, generator(1))
        rotation_t = torch.linalg.solve(batch.cell, rotated.cell)  # [B, 3, 3]: R.T
        eye = torch.eye(3, dtype=torch.float64)
        torch.testing.assert_close(rotation_t @ rotation_t.transpose(1, 2), eye.expand_as(rotation_t))
        assert torch.allclose(torch.linalg.det(rotation_t), torch.ones(len(graphs), dtype=torch.float64))
        g = generator(1)
        item = torch.stack(
            [torch.linalg.solve(d.cell[0], RandomRotation(max_angle=max_angle)(d, g).cell[0]) for d in graphs]
        )
        angles = [
            torch.arccos(((r.diagonal(0, 1, 2).sum(1) - 1) / 2).clamp(-1, 1)) for r in (rotation_t, item)
        ]
        assert all(float(a.max()) <= math.radians(max_angle) + 1e-9 for a in angles)
        # the same angle distribution: Haar (mean pi/2 + 2/pi) or uniform in [0, max_angle]
        expected = math.pi / 2 + 2 / math.pi if max_angle == 180 else math.radians(max_angle) / 2
        assert all(abs(float(a.mean()) - expected) < 0.1 * expected for a in angles)


def test_unsupported_transforms_are_refused():
    class Custom:
        def __call__(self, data, generator):
            return data

    with pytest.raises(ValueError, match="no batched form"):
        BatchedPipeline([RandomRotation(), Custom()])
    with pytest.raises(ValueError, match="supercell"):
        BatchedPipeline([PositionNoise(), RandomSupercell()])


def test_close_atoms_and_labels(crystals):
    graphs = structures(crystals)
    graphs[1].energy = torch.tensor([1.0])
    graphs[0].energy = torch.tensor([2.0])
    graphs[2].energy = torch.tensor([3.0])
    view = rebuild_edges(collate(graphs), CUTOFF, min_distance=0.5)
    assert "energy" not in view and "edge_index" in view
    close = graphs[1].clone()
    close.pos = close.pos.clone()
    close.pos[1] = close.pos[0] + 0.1
    with pytest.raises(StructureError, match=r"entries \[1\]"):
        rebuild_edges(collate([graphs[0], close]), CUTOFF, min_distance=0.5)


def test_task_builds_views_after_transfer(crystals):
    from contrast.tasks.contrastive import ContrastiveTask

    encoder = {
        "_target_": "contrast.nn.painn.PaiNN",
        "hidden_dim": 8,
        "num_layers": 1,
        "cutoff": CUTOFF,
        "num_rbf": 4,
    }
    module = ContrastiveTask(
        encoder=encoder,
        projector={"_target_": "contrast.nn.heads.ProjectionHead", "hidden_dim": 8, "out_dim": 4},
        loss={"_target_": "contrast.losses.InfoNCELoss", "temperature": 0.2},
        optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-3},
    ).double()
    batch = collate(structures(crystals))
    assert module.on_after_batch_transfer(batch, 0) is batch  # no trainer: unchanged
    views = BatchedViews.from_two_views(
        TwoViews(ViewPipeline([RandomRotation()], [], CUTOFF), ViewPipeline([], [], CUTOFF))
    )
    module._trainer = SimpleNamespace(
        datamodule=SimpleNamespace(view_transform=views), training=False, current_epoch=0
    )
    try:
        view_a, view_b = module.on_after_batch_transfer(batch, 0)
        again = module.on_after_batch_transfer(batch, 0)
    finally:
        module._trainer = None
    assert_contract(view_a)
    assert_contract(view_b)
    assert torch.equal(again[0].pos, view_a.pos)  # validation views are fixed
    h_a, h_b = module(view_a), module(view_b)
    torch.testing.assert_close(h_a, h_b)  # a rotation alone: an invariant encoder sees the same crystal
