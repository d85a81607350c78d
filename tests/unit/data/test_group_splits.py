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


@pytest.mark.parametrize("fractions", [(0.9, 0.1, 0.0), (0.8, 0.1, 0.1), (0.6, 0.2, 0.2)])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_spread_blocks_are_whole_evenly_spaced_and_as_many_as_the_fractions_say(fractions, seed):
    kinds = ["unknown"] * 270  # one label, as in a file whose frames carry no group
    block_size = 10
    split = block_split(kinds, fractions, seed=seed, block_size=block_size, spread=True)
    where = _part_of(split)
    assert sorted(where) == list(range(270))
    blocks = {}
    for start in range(0, 270, block_size):
        parts = {where[i] for i in range(start, min(start + block_size, 270))}
        assert len(parts) == 1  # blocks stay whole
        blocks[start // block_size] = parts.pop()
    held = sorted(b for b, part in blocks.items() if part != "train")
    for part, fraction in zip(("val", "test"), fractions[1:]):
        assert sum(p == part for p in blocks.values()) == round(fraction * 27)
    # evenly spaced: the held-out blocks cut the 27 blocks into stretches of equal length (up to one block)
    stride = 27 / len(held)
    assert held[0] < stride + 1 and all(abs((b - a) - stride) <= 1 for a, b in zip(held, held[1:]))
    assert split == block_split(kinds, fractions, seed=seed, block_size=block_size, spread=True)


def test_spread_reaches_every_stretch_of_a_file_where_random_blocks_can_miss_one():
    # 270 frames without groups: 90 vacancies, then 90 MD frames, then 90 strained cells
    kinds = ["unknown"] * 270
    kind_of = ["vacancy"] * 90 + ["md"] * 90 + ["elastic"] * 90
    for seed in range(10):
        val = block_split(kinds, (0.9, 0.1, 0.0), seed=seed, block_size=10, spread=True)["val"]
        assert {kind_of[i] for i in val} == {"vacancy", "md", "elastic"}
    missed = sum(
        len({kind_of[i] for i in block_split(kinds, (0.9, 0.1, 0.0), seed=seed, block_size=10)["val"]}) < 3
        for seed in range(10)
    )
    assert missed > 0  # what spreading is for


def test_the_mlearn_preset_spreads_its_validation_blocks():
    from omegaconf import OmegaConf

    preset = OmegaConf.load(contrast.CONFIG_DIR / "experiment" / "mlearn.yaml")
    assert preset.data.split == "blocks" and preset.data.block_spread is True


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
