"""Several sources in one run: probabilities, the per-epoch draw, DDP shards and the joined dataset."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ase.build import bulk
from torch.utils.data import DistributedSampler

from contrast.augment import PositionNoise, RandomRotation, TwoViews, ViewPipeline
from contrast.data.datamodule import CrystalDataModule
from contrast.data.sampling import SourceSampler, source_probabilities
from contrast.data.sources import MultiSourceDataset, parse_sources, split_sources
from contrast.data.splits import SPLIT_NAMES

CUTOFF = 4.0


def two_sources(n_a: int = 100, n_b: int = 400) -> np.ndarray:
    return np.repeat([0, 1], [n_a, n_b])


def test_weights_give_the_probabilities():
    assert np.allclose(source_probabilities([100, 400], [3.0, 1.0]), [0.75, 0.25])
    assert np.allclose(source_probabilities([100, 400]), [0.5, 0.5])
    assert np.allclose(source_probabilities([100, 400, 7], [2.0, 2.0, 0.0]), [0.5, 0.5, 0.0])


def test_temperature_rule_by_hand():
    # T = 1: in proportion to size, 100 / 500 and 400 / 500.
    assert np.allclose(source_probabilities([100, 400], [9.0, 1.0], temperature=1.0), [0.2, 0.8])
    # T = 2: sqrt(100) = 10 and sqrt(400) = 20, so 1/3 and 2/3.
    assert np.allclose(source_probabilities([100, 400], temperature=2.0), [1 / 3, 2 / 3])
    # T = inf: uniform over the sources; an empty source is never drawn.
    assert np.allclose(source_probabilities([100, 400, 0], temperature=math.inf), [0.5, 0.5, 0.0])


@pytest.mark.parametrize(
    "sizes, weights, temperature",
    [
        ([10, 20], None, 0.0),
        ([10, 20], [1.0, -1.0], None),
        ([10, 0], [1.0, 1.0], None),
        ([1, 2], [0, 0], None),
    ],
)
def test_bad_probability_settings_are_refused(sizes, weights, temperature):
    with pytest.raises(ValueError):
        source_probabilities(sizes, weights, temperature)


def test_two_sources_are_drawn_in_their_stated_ratio():
    sources = two_sources()
    sampler = SourceSampler(sources, source_probabilities([100, 400], [3.0, 1.0]), seed=7)
    epochs = 8
    counts = sum(sampler.counts(epoch) for epoch in range(epochs))
    draws = epochs * len(sources)
    assert counts.sum() == draws
    std = math.sqrt(0.75 * 0.25 / draws)  # binomial std of the realised fraction
    assert abs(counts[0] / draws - 0.75) < 4 * std


def test_draw_is_deterministic_in_seed_and_epoch():
    sources, p = two_sources(), [0.75, 0.25]
    first, again = SourceSampler(sources, p, seed=3), SourceSampler(sources, p, seed=3)
    first.set_epoch(2)
    again.set_epoch(2)
    assert list(first) == list(again)
    assert np.array_equal(first.draw(5), again.draw(5))
    assert not np.array_equal(first.draw(2), first.draw(3))
    assert not np.array_equal(first.draw(2), SourceSampler(sources, p, seed=4).draw(2))


def test_a_source_goes_through_its_structures_before_repeating_them():
    sources = two_sources(100, 400)
    sampler = SourceSampler(sources, [0.75, 0.25], seed=0)
    draw = sampler.draw(0)
    positions, repeat = draw % len(sources), draw // len(sources)
    small = positions[sources[positions] == 0]
    # Over-drawn: all of its structures, then repeats.
    assert len(small) > 100 and set(small.tolist()) == set(range(100))
    first_round = np.bincount(positions[repeat == 0], minlength=len(sources))
    assert first_round.max() == 1
    large = positions[sources[positions] == 1]
    assert len(set(large.tolist())) == len(large)  # under-drawn: no repeats
    assert len(set(draw.tolist())) == len(draw)  # every repeat has its own index (and its own views)


@pytest.mark.parametrize("total", [500, 333])
def test_two_ranks_take_disjoint_parts_that_make_the_epochs_draw(total):
    sources, p = two_sources(), [0.75, 0.25]
    ranks = [SourceSampler(sources, p, total, seed=5, num_replicas=2, rank=r) for r in range(2)]
    for sampler in ranks:
        sampler.set_epoch(4)
        assert isinstance(sampler, DistributedSampler)  # so Lightning does not shard it again
    parts = [list(sampler) for sampler in ranks]
    assert len(parts[0]) == len(parts[1]) == math.ceil(total / 2)
    assert not set(parts[0]) & set(parts[1])
    draw = ranks[0].draw(4)
    assert len(draw) == 2 * math.ceil(total / 2)
    assert sorted(parts[0] + parts[1]) == sorted(draw.tolist())


def structures(elements: list[str], lattice: str, a: float, n: int) -> list:
    return [bulk(elements[k % len(elements)], lattice, a=a + 0.01 * k) for k in range(n)]


@pytest.fixture(scope="module")
def data():
    # "Cu" is in both sources: a composition split keeps it in one part across them.
    return {
        "cu": structures(["Cu", "Al", "Ni", "Ag", "Au", "Pd", "Pt", "Pb"], "fcc", 3.6, 20),
        "si": structures(["Fe", "W", "Mo", "Cr", "V", "Nb", "Ta", "Na", "Cu"], "bcc", 3.0, 40),
    }


def test_joined_dataset_prefixes_ids_and_numbers_items_globally(data):
    from contrast.data.dataset import load_dataset

    parts = [load_dataset(data[name], cutoff=CUTOFF) for name in ("cu", "si")]
    joined = MultiSourceDataset(parts, ["cu", "si"])
    assert len(joined) == 60 and joined.sizes.tolist() == [20, 40]
    assert joined.ids[0] == f"cu:{parts[0].ids[0]}" and joined.ids[20] == f"si:{parts[1].ids[0]}"
    assert len(set(joined.ids)) == 60
    item = joined[25]
    assert int(item.idx) == 25 and torch.equal(item.pos, parts[1][5].pos)
    assert joined.locate(25) == (1, 5)
    for split in ("random", "composition"):
        split_parts = split_sources(joined, split, (0.5, 0.25, 0.25), seed=1)
        for name in SPLIT_NAMES:
            # Every source in every part.
            assert set(joined.source_index[split_parts[name]].tolist()) == {0, 1}
        formulas = {name: {joined.formulas[i] for i in split_parts[name]} for name in SPLIT_NAMES}
        if split == "composition":
            assert not formulas["train"] & (formulas["val"] | formulas["test"])


def test_source_entries_are_checked():
    assert parse_sources(["x/mp.extxyz.gz"])[0] == {
        "source": "x/mp.extxyz.gz",
        "name": "mp",
        "weight": 1.0,
        "max_structures": None,
    }
    with pytest.raises(ValueError, match="distinct name"):
        parse_sources(["a/mp.extxyz", "b/mp.cif"])
    with pytest.raises(ValueError, match="unknown keys"):
        parse_sources([{"path": "a.xyz", "wieght": 2}])


def views() -> TwoViews:
    return TwoViews(
        ViewPipeline([RandomRotation(), PositionNoise(sigma=0.05)], [], CUTOFF),
        ViewPipeline([PositionNoise(sigma=0.02)], [], CUTOFF),
        seed=3,
    )


def test_datamodule_draws_training_views_by_source_and_reports_the_draws(data):
    dm = CrystalDataModule(
        None,
        cutoff=CUTOFF,
        batch_size=8,
        fractions=(0.5, 0.25, 0.25),
        view_transform=views(),
        sources=[{"path": data["cu"], "name": "cu", "weight": 3.0}, {"path": data["si"], "name": "si"}],
        samples_per_epoch=64,
    )
    dm.setup()
    assert np.allclose(dm.source_probabilities, [0.75, 0.25])
    assert len(dm.val_set) == 15 and len(dm.test_set) == 15  # unweighted: every structure once
    pairs = list(dm.train_dataloader())
    idx = torch.cat([view_a.idx for view_a, _ in pairs])
    assert len(idx) == 64
    cu = int((idx < 20).sum())
    mix = dm.source_mix(0)
    assert mix["data/source_fraction/cu"] == pytest.approx(cu / 64)
    assert mix["data/source_probability/si"] == pytest.approx(0.25)
    report = dm.source_report()
    assert report["cu"]["drawn"] == cu and report["si"]["drawn"] == 64 - cu
    assert report["cu"]["size"] == 20 and report["cu"]["val"] == 5
    # Repeats of one structure in an epoch get their own views.
    first = {}
    for view_a, _ in pairs:
        for k in range(view_a.num_graphs):
            key, pos = int(view_a.idx[k]), view_a.pos[view_a.batch == k]
            if key in first:
                assert not torch.equal(first[key], pos)
            first[key] = pos
