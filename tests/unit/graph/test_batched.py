"""The batched torch neighbour search against vesin's (``graph_edges``) on single structures and batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

import contrast
from contrast.graph.batched import batch_neighbour_list, image_counts, plane_distances
from contrast.graph.convert import CrystalArrays, arrays_to_graph, graph_edges
from contrast.nn.geometry import edge_vectors

from .test_convert import random_crystal

SAMPLE = Path(contrast.__file__).parent / "data" / "samples" / "mp_sample.extxyz.gz"


def edge_set(edge_index, shift) -> set[tuple]:
    """``{(i, j, s0, s1, s2)}``; duplicates are an error."""
    j, i = np.asarray(edge_index)
    shift = np.rint(np.asarray(shift)).astype(int)
    keys = [(int(a), int(b), *s.tolist()) for a, b, s in zip(i, j, shift)]
    assert len(set(keys)) == len(keys), "duplicate edges"
    return set(keys)


def silicon() -> CrystalArrays:
    cell = 0.5 * 5.43 * np.array([[0.0, 1, 1], [1, 0, 1], [1, 1, 0]])
    return CrystalArrays(np.array([14, 14]), np.array([[0, 0, 0], [0.25, 0.25, 0.25]]) @ cell, cell)


def triclinic() -> CrystalArrays:
    rng = np.random.default_rng(3)
    cell = np.array([[4.2, 0.0, 0.0], [1.3, 3.9, 0.0], [-0.8, 1.1, 4.7]])
    frac = rng.uniform(-0.3, 1.3, (5, 3))  # partly outside the cell
    return CrystalArrays(np.array([8, 14, 26, 8, 1]), frac @ cell, cell)


def one_atom() -> CrystalArrays:
    return CrystalArrays(np.array([29]), np.array([[0.3, -0.2, 0.1]]), np.diag([2.5, 2.6, 2.7]))


def small_cell() -> CrystalArrays:
    """A flat, skewed 2-atom cell far smaller than the cutoff: many images of every atom, its own included."""
    cell = np.array([[1.9, 0.0, 0.0], [0.9, 2.1, 0.0], [0.4, 0.3, 1.6]])
    return CrystalArrays(np.array([3, 9]), np.array([[0.1, 0.2, 0.3], [1.0, 1.1, 0.9]]), cell)


CASES = {"silicon": silicon, "triclinic": triclinic, "one_atom": one_atom, "small_cell": small_cell}


@pytest.fixture(scope="session")
def mp_crystals(tmp_path_factory) -> list[CrystalArrays]:
    """The first mp-like structures of the bundled sample with at most 8 atoms."""
    ds = contrast.load_dataset(
        SAMPLE, cutoff=5.0, max_structures=40, cache_dir=tmp_path_factory.mktemp("cache")
    )
    graphs = [ds[k] for k in range(len(ds))]
    small = [g for g in graphs if g.num_nodes <= 8][:6]
    return [CrystalArrays(g.z.numpy(), g.pos.double().numpy(), g.cell[0].double().numpy()) for g in small]


def search_one(crystal: CrystalArrays, cutoff: float, dtype=torch.float64, max_pairs: int = 1 << 21):
    pos = torch.tensor(crystal.pos, dtype=dtype)
    cell = torch.tensor(crystal.cell, dtype=dtype)[None]
    return batch_neighbour_list(pos, cell, torch.zeros(len(pos), dtype=torch.long), cutoff, max_pairs)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("cutoff", [3.1, 5.0, 6.3])
def test_same_edges_as_vesin(name, cutoff):
    crystal = CASES[name]()
    expected = edge_set(*graph_edges(crystal, cutoff))
    edge_index, shift, distance = search_one(crystal, cutoff, max_pairs=257)  # many chunks
    assert edge_index.dtype == torch.long and shift.dtype == torch.float64
    assert edge_set(edge_index, shift) == expected
    vec = crystal.pos[edge_index[0]] - crystal.pos[edge_index[1]] + shift.numpy() @ crystal.cell
    np.testing.assert_allclose(distance.numpy(), np.linalg.norm(vec, axis=1), atol=1e-12)


def test_same_edges_as_vesin_on_random_triclinic_cells():
    rng = np.random.default_rng(11)
    for _ in range(25):
        pos, cell = random_crystal(rng, int(rng.integers(1, 7)), skew=0.6)
        cutoff = float(rng.uniform(1.5, 6.0))
        crystal = CrystalArrays(np.ones(len(pos), dtype=np.int64), pos, cell)
        got = search_one(crystal, cutoff)
        assert edge_set(*got[:2]) == edge_set(*graph_edges(crystal, cutoff))


def test_mp_sample_and_float32(mp_crystals):
    assert len(mp_crystals) >= 3
    for crystal in mp_crystals:
        expected = edge_set(*graph_edges(crystal, 5.0))
        assert edge_set(*search_one(crystal, 5.0)[:2]) == expected
        edge_index, shift, _ = search_one(crystal, 5.0, dtype=torch.float32)
        assert shift.dtype == torch.float32 and edge_set(edge_index, shift) == expected


def test_batch_offsets_and_edge_vectors(mp_crystals):
    crystals = [silicon(), one_atom(), triclinic(), *mp_crystals[:3], small_cell()]
    cutoff = 4.5
    graphs = [arrays_to_graph(c, cutoff, dtype=torch.float64) for c in crystals]
    batch = Batch.from_data_list(graphs)
    edge_index, shift, distance = batch_neighbour_list(batch.pos, batch.cell, batch.batch, cutoff)
    # targets are ordered by structure, so each structure's edges form one block
    owner = batch.batch[edge_index[1]]
    assert torch.equal(owner, batch.batch[edge_index[0]]) and bool((owner.diff() >= 0).all())
    for b, graph in enumerate(graphs):
        mine = (owner == b).nonzero().squeeze(1)
        local = edge_index[:, mine] - batch.ptr[b]
        assert edge_set(local, shift[mine]) == edge_set(graph.edge_index, graph.cell_shift), f"structure {b}"
    # the encoders' edge vectors agree with those of vesin's lists, edge for edge once sorted
    rebuilt = batch.clone()
    rebuilt.edge_index, rebuilt.cell_shift = edge_index, shift
    ours = edge_vectors(rebuilt).norm(dim=1)
    np.testing.assert_allclose(ours.numpy(), distance.numpy(), atol=1e-12)
    reference = edge_vectors(batch).norm(dim=1)
    np.testing.assert_allclose(np.sort(ours.numpy()), np.sort(reference.numpy()), atol=1e-12)


def test_gradients_reach_positions():
    batch = Batch.from_data_list(
        [arrays_to_graph(c, 4.0, dtype=torch.float64) for c in (silicon(), triclinic())]
    )
    edge_index, shift, _ = batch_neighbour_list(batch.pos, batch.cell, batch.batch, 4.0)
    pos = batch.pos.clone().requires_grad_(True)
    batch.edge_index, batch.cell_shift = edge_index, shift
    energy = (edge_vectors(batch, pos=pos).norm(dim=1) ** 2).sum()
    (grad,) = torch.autograd.grad(energy, pos)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # d/dpos of sum |vec|^2 over a full list: each pair twice, 4 vec per edge end
    j, i = edge_index
    vec = edge_vectors(batch).detach()
    expected = torch.zeros_like(pos).index_add_(0, j, 2 * vec).index_add_(0, i, -2 * vec)
    torch.testing.assert_close(grad, expected)


def test_image_counts_of_triclinic_and_small_cells():
    cell = torch.tensor([[[4.0, 0, 0], [0, 5, 0], [0, 0, 6]], [[1.9, 0, 0], [0.9, 2.1, 0], [0.4, 0.3, 1.6]]])
    d = plane_distances(cell)
    torch.testing.assert_close(d[0], torch.tensor([4.0, 5.0, 6.0], dtype=torch.float64))
    volume = torch.linalg.det(cell[1].double()).abs()
    torch.testing.assert_close(d[1, 2], volume / torch.linalg.cross(cell[1, 0], cell[1, 1]).double().norm())
    assert image_counts(cell, 5.0)[0].tolist() == [1, 1, 1]  # floor(5/4 + 1/2), floor(1.5), floor(1.33)
    assert (image_counts(cell, 5.0)[1] >= 2).all()


def test_empty_inputs_and_bad_chunk():
    empty = batch_neighbour_list(
        torch.zeros(0, 3), torch.zeros(0, 3, 3), torch.zeros(0, dtype=torch.long), 5.0
    )
    assert empty[0].shape == (2, 0) and empty[1].shape == (0, 3) and empty[2].shape == (0,)
    with pytest.raises(ValueError, match="max_pairs"):
        search_one(silicon(), 3.0, max_pairs=0)
