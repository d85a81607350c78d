"""Splits by group and by contiguous blocks: no group (or block) on two sides, every group in every part of
a block split, and the group label kept per structure by the store."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
from ase.build import bulk

import contrast
from contrast.data.splits import SPLIT_NAMES, block_split, group_split
from contrast.graph import StructureError

GROUPS = ["md"] * 40 + ["vacancy"] * 23 + ["surface"] * 7 + ["elastic"] * 30


def _part_of(split: dict[str, list[int]]) -> dict[int, str]:
    where = {index: name for name in SPLIT_NAMES for index in split[name]}
    assert len(where) == sum(len(split[name]) for name in SPLIT_NAMES)  # no structure in two parts
    return where


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_group_split_never_puts_one_group_on_both_sides(seed):
    where = _part_of(group_split(GROUPS, (0.7, 0.2, 0.1), seed))
    assert sorted(where) == list(range(len(GROUPS)))
    for group in set(GROUPS):
        assert len({where[i] for i, g in enumerate(GROUPS) if g == group}) == 1


@pytest.mark.parametrize("block_size", [1, 5, 10])
def test_a_block_split_keeps_blocks_whole_and_every_group_in_val(block_size):
    split = block_split(GROUPS, (0.8, 0.2, 0.0), seed=0, block_size=block_size)
    where = _part_of(split)
    for group in set(GROUPS):
        members = [i for i, g in enumerate(GROUPS) if g == group]
        for start in range(0, len(members), block_size):
            assert len({where[i] for i in members[start : start + block_size]}) == 1
        if 0.2 * -(-len(members) // block_size) >= 1:  # a share of val of at least one block
            assert any(where[i] == "val" for i in members)
    assert not split["test"]
    assert abs(len(split["val"]) / len(GROUPS) - 0.2) < 0.1


def test_block_split_is_seeded_and_checks_its_block_size():
    assert block_split(GROUPS, seed=3) == block_split(GROUPS, seed=3)
    assert block_split(GROUPS, seed=3) != block_split(GROUPS, seed=4)
    with pytest.raises(ValueError, match="block_size"):
        block_split(GROUPS, block_size=0)


def _frames(tmp_path, labels):
    frames = []
    for k, label in enumerate(labels):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.rattle(0.02, seed=k)
        if label is not None:
            atoms.info["group"] = label
        atoms.info["energy_per_atom"] = -0.1 * k
        frames.append(atoms)
    path = tmp_path / "frames.extxyz"
    ase.io.write(path, frames, format="extxyz")
    return str(path)


def test_the_store_keeps_each_structures_group(tmp_path):
    path = _frames(tmp_path, ["a", "a", "b", "c"])
    ds = contrast.load_dataset(path, cutoff=3.0, cache_dir=tmp_path / "c", group_key="group")
    assert ds.groups == ["a", "a", "b", "c"]
    assert contrast.load_dataset(path, cutoff=3.0, cache_dir=tmp_path / "c").groups is None
    sharded = contrast.load_dataset(
        path, cutoff=3.0, cache_dir=tmp_path / "s", group_key="group", shard_size=3
    )
    assert sharded.groups == ds.groups


def test_a_structure_without_its_group_is_bad_input(tmp_path):
    path = _frames(tmp_path, ["a", None, "b"])
    with pytest.raises(StructureError, match=r"frames.extxyz, entry 1.*no 'group' label"):
        contrast.load_dataset(path, cutoff=3.0, cache_dir=tmp_path / "c", group_key="group")
    ds = contrast.load_dataset(path, cutoff=3.0, cache_dir=tmp_path / "c", group_key="group", on_error="skip")
    assert ds.groups == ["a", "b"] and len(ds.skipped) == 1
    np.testing.assert_equal(len(ds), 2)
