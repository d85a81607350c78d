"""Splits (random, by composition, from a file keyed by structure ids) and the DataModule's loaders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase.build import bulk
from torch_geometric.data import Batch

import contrast
from contrast.data.datamodule import CrystalDataModule
from contrast.data.splits import (
    composition_split,
    load_split,
    nested_subsets,
    random_split,
    save_split,
    select_split,
)

FORMULAS = [f"A{k % 23}B" for k in range(200)]


def test_random_split_partitions_and_is_seeded():
    split = random_split(100, (0.7, 0.2, 0.1), seed=3)
    assert sorted(split["train"] + split["val"] + split["test"]) == list(range(100))
    assert [len(split[k]) for k in ("train", "val", "test")] == [70, 20, 10]
    assert split == random_split(100, (0.7, 0.2, 0.1), seed=3)
    assert split != random_split(100, (0.7, 0.2, 0.1), seed=4)


def test_composition_split_keeps_formulas_apart():
    split = composition_split(FORMULAS, (0.8, 0.1, 0.1), seed=0)
    groups = {name: {FORMULAS[i] for i in indices} for name, indices in split.items()}
    assert not groups["train"] & groups["test"] and not groups["train"] & groups["val"]
    assert not groups["val"] & groups["test"]
    assert sorted(sum(split.values(), [])) == list(range(200))
    assert abs(len(split["train"]) - 160) <= 10  # groups of 8 or 9 limit the precision
    assert split == composition_split(FORMULAS, (0.8, 0.1, 0.1), seed=0)


def test_bad_fractions_and_split_files(tmp_path):
    with pytest.raises(ValueError, match="fractions"):
        random_split(10, (0.5, 0.2, 0.2))
    ids = ["a", "b", "c"]
    (tmp_path / "s.json").write_text(json.dumps({"train": [0, 1], "val": [1], "test": []}))
    with pytest.raises(ValueError, match="repeats"):
        load_split(tmp_path / "s.json", ids)
    (tmp_path / "s.json").write_text(json.dumps({"train": [0, 5], "val": [], "test": []}))
    with pytest.raises(ValueError, match="outside"):
        load_split(tmp_path / "s.json", ids)
    (tmp_path / "s.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"s\.json: not JSON"):
        load_split(tmp_path / "s.json", ids)
    save_split({"train": [0], "val": [1], "test": [2]}, tmp_path / "s.json", ids)
    record = json.loads((tmp_path / "s.json").read_text())
    record["ids"]["val"] = ["a"]
    (tmp_path / "s.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="repeats ids"):
        load_split(tmp_path / "s.json", ids)


@pytest.fixture(scope="module")
def structures():
    out = []
    for k in range(12):
        atoms = bulk(["Cu", "Al", "Ni", "Ag"][k % 4], "fcc", a=3.6 + 0.05 * k)
        atoms.info["band_gap"] = float(k)
        out.append(atoms)
    return out


class PairViews:
    """A stand-in view transform: item i becomes (item, item with shifted positions)."""

    def wrap(self, dataset):
        return [(data, data.clone().update({"pos": data.pos + 0.1})) for data in dataset]


def test_datamodule_random_and_file_round_trip(tmp_path, structures):
    dm = CrystalDataModule(
        structures, cutoff=4.0, targets=["band_gap"], batch_size=4, output_dir=str(tmp_path)
    )
    dm.setup()
    saved = json.loads((tmp_path / "splits.json").read_text())
    assert [len(saved[k]) for k in ("train", "val", "test")] == [10, 1, 1]
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, Batch) and batch.num_graphs == 4 and batch.band_gap.shape == (4,)
    again = CrystalDataModule(structures, cutoff=4.0, split="file", split_file=str(tmp_path / "splits.json"))
    again.setup()
    assert again.splits == {name: saved[name] for name in ("train", "val", "test")}
    assert saved["ids"] == {name: [again.dataset.ids[i] for i in saved[name]] for name in again.splits}
    assert saved["dataset"]["structures"] == 12 and len(saved["dataset"]["ids_sha256"]) == 64
    assert [d.idx.item() for d in again.test_set] == saved["test"]


def test_datamodule_composition_split(structures):
    dm = CrystalDataModule(structures, cutoff=4.0, split="composition", fractions=(0.5, 0.25, 0.25), seed=1)
    dm.setup()
    formulas = {name: {dm.dataset.formulas[i] for i in dm.splits[name]} for name in ("train", "val", "test")}
    assert not formulas["train"] & formulas["test"] and not formulas["train"] & formulas["val"]


def test_datamodule_views_collate_to_two_batches(structures):
    dm = CrystalDataModule(structures, cutoff=4.0, batch_size=3, view_transform=PairViews())
    dm.setup()
    view_a, view_b = next(iter(dm.train_dataloader()))
    assert isinstance(view_a, Batch) and view_a.num_graphs == 3
    assert torch.allclose(view_b.pos - view_a.pos, torch.full_like(view_a.pos, 0.1))
    test_a, test_b = next(iter(dm.test_dataloader()))  # held-out structures are scored on views too
    assert isinstance(test_a, Batch) and isinstance(test_b, Batch)
    assert np.isfinite(view_a.pos.numpy()).all()


def test_worker_batches_arrive_by_value_and_equal_main_process_batches(structures):
    """Batches made in DataLoader workers come back by value and equal those made in the main process."""
    batches = {}
    for workers in (0, 2):
        dm = CrystalDataModule(
            structures, cutoff=4.0, targets=["band_gap"], batch_size=3, num_workers=workers, seed=2
        )
        dm.setup()
        batches[workers] = list(dm.train_dataloader())
    assert len(batches[0]) == len(batches[2]) == 4
    for serial, parallel in zip(batches[0], batches[2]):
        assert isinstance(parallel, Batch) and parallel.num_graphs == serial.num_graphs
        for key in ("z", "pos", "cell", "edge_index", "cell_shift", "batch", "band_gap", "idx"):
            assert torch.equal(serial[key], parallel[key]), key
        assert not parallel.pos.is_shared()  # not handed over through shared memory
        assert serial.get_example(0).num_nodes == parallel.get_example(0).num_nodes


def labelled(count: int = 12, unlabelled_every: int = 3) -> list:
    """Distinct named crystals; every ``unlabelled_every``-th lacks the ``band_gap`` label."""
    out = []
    for k in range(count):
        atoms = bulk(["Cu", "Al", "Ni", "Ag"][k % 4], "fcc", a=3.6 + 0.05 * k)
        atoms.info["id"] = f"x{k}"
        if k % unlabelled_every:
            atoms.info["band_gap"] = float(k)
        out.append(atoms)
    return out


def selected(module: CrystalDataModule) -> dict[str, list[tuple]]:
    """The structures (atomic numbers and lattice) of each part, independent of positions and ids."""
    return {
        name: sorted(
            (tuple(module.dataset.structure(i).z), tuple(module.dataset.structure(i).cell.ravel().round(6)))
            for i in module.splits[name]
        )
        for name in ("train", "val", "test")
    }


def test_split_file_selects_the_same_structures_under_another_skip_policy_and_cutoff(tmp_path):
    structures = labelled()
    # The first run skips the four unlabelled entries, so its positions are not those of the full dataset.
    first = CrystalDataModule(
        structures,
        cutoff=4.0,
        targets=["band_gap"],
        on_error="skip",
        fractions=(0.5, 0.25, 0.25),
        output_dir=str(tmp_path),
    )
    first.setup()
    assert len(first.dataset) == 8
    again = CrystalDataModule(structures, cutoff=3.0, split="file", split_file=str(tmp_path / "splits.json"))
    again.setup()
    assert len(again.dataset) == 12
    assert selected(again) == selected(first)
    assert {name: [again.dataset.ids[i] for i in again.splits[name]] for name in again.splits} == {
        name: [first.dataset.ids[i] for i in first.splits[name]] for name in first.splits
    }


def test_split_file_of_another_dataset_is_refused_naming_what_differs(tmp_path):
    structures = labelled()
    CrystalDataModule(structures, cutoff=4.0, output_dir=str(tmp_path)).setup()
    smaller = CrystalDataModule(
        structures[:8], cutoff=4.0, split="file", split_file=str(tmp_path / "splits.json")
    )
    with pytest.raises(
        ValueError, match=r"splits\.json does not match this dataset: 4 of its 12 structures"
    ) as info:
        smaller.setup()
    assert "written for 12 structures" in str(info.value) and "this dataset has 8" in str(info.value)
    positions, missing = select_split(tmp_path / "splits.json", [f"x{k}" for k in range(8)])
    assert sorted(sum(missing.values(), [])) == ["x10", "x11", "x8", "x9"]
    assert sorted(sum(positions.values(), [])) == list(range(8))


def test_positions_only_split_files_are_used_only_when_they_cover_the_dataset(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"train": [0, 2], "val": [1], "test": [3]}))
    assert load_split(path, ["a", "b", "c", "d"]) == {"train": [0, 2], "val": [1], "test": [3]}
    with pytest.raises(ValueError, match=r"old\.json holds positions only .* cover 4 of the 5 structures"):
        load_split(path, ["a", "b", "c", "d", "e"])


def test_dataset_ids_are_unique_and_do_not_depend_on_skipped_entries():
    structures = labelled(6, unlabelled_every=100)
    for atoms in structures:
        atoms.info["band_gap"] = 1.0
    for atoms in structures[:3]:
        atoms.info["id"] = "frame"  # e.g. every frame of a trajectory named after its file
    structures[4].info.pop("id")  # named by its position in the source
    twin = structures[1].copy()  # an exact copy under the same id
    broken = structures[2].copy()
    broken.positions[0] += 1e-3
    broken.info = {"id": "frame"}  # no band_gap: skipped below, where the label is asked for
    entries = [broken, *structures, twin]
    ids = contrast.load_dataset(entries).ids
    assert len(set(ids)) == len(ids) == 8
    assert all(i.startswith("frame@") for i in ids[:4]) and ids[7] == ids[2] + "~2"
    assert ids[4] == "x3" and ids[5] == "5" and ids[6] == "x5"
    skipping = contrast.load_dataset(entries, targets=["band_gap"], on_error="skip")
    assert skipping.ids == ids[1:]


def test_nested_subsets_are_nested_seeded_and_at_least_two():
    pool = np.arange(100, 300)
    subsets = nested_subsets(pool, [0.001, 0.1, 0.5, 1.0], seed=3)
    assert len(subsets[0.001]) == 2 and len(subsets[0.1]) == 20 and len(subsets[1.0]) == 200
    assert set(subsets[0.001]) <= set(subsets[0.1]) <= set(subsets[0.5]) <= set(subsets[1.0]) == set(pool)
    np.testing.assert_array_equal(nested_subsets(pool, [0.1], seed=3)[0.1], subsets[0.1])
    assert not np.array_equal(nested_subsets(pool, [0.1], seed=4)[0.1], subsets[0.1])
