"""The structure store: atoms and cells only, neighbour lists searched per item, the same data as the graph
store in a tenth of the bytes."""

from __future__ import annotations

import os
import pickle

import ase.io
import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

import contrast
from contrast.data.datamodule import CrystalDataModule
from contrast.data.store.arrays import bytes_per_atom

CUTOFF = 4.0
TARGETS = ["energy", "forces", "stress", "band_gap"]


def labelled(seed: int, repeat: tuple[int, int, int] = (1, 1, 1)):
    rng = np.random.default_rng(seed)
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True) if seed % 2 else bulk("NaCl", "rocksalt", a=5.6)
    atoms = atoms.repeat(repeat)
    atoms.rattle(0.05, seed=seed)
    atoms.info.update(id=f"s{seed}", band_gap=float(rng.uniform(0, 3)))
    atoms.calc = SinglePointCalculator(
        atoms, energy=float(rng.normal()), forces=rng.normal(size=(len(atoms), 3)), stress=rng.normal(size=6)
    )
    return atoms


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    frames = [labelled(seed) for seed in range(6)]
    path = tmp_path_factory.mktemp("structures") / "train.extxyz"
    ase.io.write(path, frames, format="extxyz")
    return str(path), ase.io.read(path, index=":")  # the file's values (positions with 8 decimals)


def edge_set(data) -> set:
    rows = torch.cat([data.edge_index.T, data.cell_shift.round().long()], dim=1)
    return set(map(tuple, rows.tolist()))


@pytest.mark.parametrize("store", ["graph", "structure"])
def test_round_trip_equals_the_source(tmp_path, source, store):
    path, frames = source
    ds = contrast.load_dataset(path, cutoff=CUTOFF, targets=TARGETS, cache_dir=tmp_path, store=store)
    assert ds.store == store and len(ds) == len(frames)
    assert ds.ids == [a.info["id"] for a in frames]
    for k, atoms in enumerate(frames):
        crystal = ds.structure(k)
        np.testing.assert_array_equal(crystal.z, atoms.numbers)
        tolerance = 0 if store == "graph" else 1e-6  # float32 positions: 6e-8 relative
        np.testing.assert_allclose(crystal.pos, atoms.positions, rtol=tolerance, atol=tolerance)
        np.testing.assert_array_equal(crystal.cell, atoms.cell[:])
        item = ds[k]
        assert item.energy.item() == pytest.approx(atoms.get_potential_energy())
        np.testing.assert_allclose(item.forces.numpy(), atoms.get_forces(), atol=1e-6)
        np.testing.assert_allclose(item.stress[0].numpy(), atoms.get_stress(voigt=False), atol=1e-6)
        assert item.band_gap.item() == pytest.approx(atoms.info["band_gap"])
    assert ("edge_index" in ds.arrays) == (store == "graph")


def test_structure_items_equal_graph_items(tmp_path, source):
    path, _ = source
    graph = contrast.load_dataset(path, cutoff=CUTOFF, targets=["energy"], cache_dir=tmp_path, store="graph")
    structure = contrast.load_dataset(
        path, cutoff=CUTOFF, targets=["energy"], cache_dir=tmp_path, store="structure"
    )
    assert structure.ids == graph.ids and structure.formulas == graph.formulas
    for k in range(len(graph)):
        a, b = graph[k], structure[k]
        assert sorted(a.keys()) == sorted(b.keys())
        assert edge_set(a) == edge_set(b) and len(edge_set(a)) == a.edge_index.shape[1]
        for key in ("z", "pos", "cell", "idx", "energy"):
            assert torch.equal(a[key], b[key]), key  # float32 items: the same values from both stores


def test_structure_store_serves_every_cutoff_from_one_cache(tmp_path, source):
    path, frames = source
    small = contrast.load_dataset(path, cutoff=3.0, cache_dir=tmp_path, store="structure")
    large = contrast.load_dataset(path, cutoff=5.0, cache_dir=tmp_path, store="structure")
    assert small.cache_path == large.cache_path
    for k, atoms in enumerate(frames):
        for ds, cutoff in ((small, 3.0), (large, 5.0)):
            reference = contrast.structure_to_graph(atoms, cutoff)
            assert edge_set(ds[k]) == edge_set(reference)


def test_auto_store_follows_views(tmp_path, source):
    path, _ = source
    plain = contrast.load_dataset(path, cutoff=CUTOFF, cache_dir=tmp_path)
    for_views = contrast.load_dataset(path, cutoff=CUTOFF, cache_dir=tmp_path, views=True)
    assert plain.store == "graph" and for_views.store == "structure"
    item = for_views[0]
    assert "edge_index" not in item and item.pos.shape == (item.num_nodes, 3)  # views build their own
    with pytest.raises(ValueError, match="store must be one of"):
        contrast.load_dataset(path, cache_dir=tmp_path, store="edges")


def test_datamodule_with_views_uses_the_structure_store(tmp_path, source):
    from contrast.augment import PositionNoise, TwoViews, ViewPipeline

    path, _ = source
    views = TwoViews(ViewPipeline([PositionNoise(sigma=0.02)], [], CUTOFF), ViewPipeline([], [], CUTOFF))
    dm = CrystalDataModule(
        path,
        cutoff=CUTOFF,
        batch_size=2,
        fractions=(0.5, 0.5, 0.0),
        cache_dir=str(tmp_path),
        view_transform=views,
    )
    dm.setup()
    assert dm.dataset.store == "structure" and not dm.dataset.edges
    view_a, view_b = next(iter(dm.train_dataloader()))
    assert view_a.edge_index.shape[1] > 0 and view_b.edge_index.shape[1] > 0
    forced = CrystalDataModule(
        path, cutoff=CUTOFF, cache_dir=str(tmp_path), view_transform=views, store="graph"
    )
    forced.setup()
    assert forced.dataset.store == "graph"


def test_pickled_structure_dataset_reopens_and_searches_again(tmp_path, source):
    path, _ = source
    ds = contrast.load_dataset(path, cutoff=CUTOFF, cache_dir=tmp_path, store="structure")
    ds[0], ds.ids  # a search and the ids list exist now: neither travels
    blob = pickle.dumps(ds)
    assert len(blob) < 5_000
    clone = pickle.loads(blob)
    assert edge_set(clone[2]) == edge_set(ds[2]) and clone.ids == ds.ids


def test_structure_store_is_at_most_30_bytes_per_atom(tmp_path):
    rng = np.random.default_rng(0)
    repeats = [(1, 1, 1), (1, 1, 2), (1, 2, 2), (2, 2, 2), (1, 1, 3), (1, 2, 3)]  # 4 to 48 atoms
    frames = [labelled(seed, repeats[rng.integers(len(repeats))]) for seed in range(24)]
    for atoms in frames:
        atoms.calc = None
        atoms.info = {"id": f"mp-{rng.integers(1, 3_000_000)}"}
    path = str(tmp_path / "sample.extxyz")
    ase.io.write(path, frames, format="extxyz")
    structure = contrast.load_dataset(path, cutoff=CUTOFF, cache_dir=tmp_path, store="structure")
    graph = contrast.load_dataset(path, cutoff=CUTOFF, cache_dir=tmp_path, store="graph")
    assert bytes_per_atom(structure.cache_path) <= 30 and structure.bytes_per_atom() <= 30
    assert graph.bytes_per_atom() > 5 * structure.bytes_per_atom()
    total = sum(
        os.path.getsize(os.path.join(structure.cache_path, n)) for n in os.listdir(structure.cache_path)
    )
    assert total < 40 * sum(len(a) for a in frames) + 8_000  # the .npy headers and meta.json besides


@pytest.mark.slow
def test_smoke_training_on_the_structure_store(tmp_path):
    from tests.integration.cli import read_metrics, run_train

    cache = tmp_path / "cache"
    run_train(tmp_path / "run", cache, "data.store=structure", "trainer.max_epochs=1")
    assert len(read_metrics(tmp_path / "run")["history"]) == 1
    (entry,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert (entry / "pos.npy").exists() and not (entry / "edge_index.npy").exists()
