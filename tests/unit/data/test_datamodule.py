"""The data module's views: drawn anew each epoch for training, the same every epoch for val and test."""

from __future__ import annotations

import pytest
import torch
from ase.build import bulk

from contrast.augment import OriginShift, PositionNoise, RandomRotation, TwoViews, ViewPipeline
from contrast.data.datamodule import CrystalDataModule

CUTOFF = 4.0
KEYS = ("z", "pos", "cell", "edge_index", "cell_shift", "batch")


@pytest.fixture(scope="module")
def structures():
    return [bulk(["Cu", "Al", "Ni", "Ag"][k % 4], "fcc", a=3.6 + 0.05 * k) for k in range(12)]


def views() -> TwoViews:
    view_a = ViewPipeline([RandomRotation(), PositionNoise(sigma=0.05)], [], CUTOFF)
    view_b = ViewPipeline([OriginShift(), PositionNoise(sigma=0.02)], [], CUTOFF)
    return TwoViews(view_a, view_b, seed=3)


def module(structures, **options) -> CrystalDataModule:
    dm = CrystalDataModule(
        structures,
        cutoff=CUTOFF,
        batch_size=4,
        fractions=(0.5, 0.25, 0.25),
        view_transform=views(),
        **options,
    )
    dm.setup()
    return dm


def batches(loader) -> list:
    return [[view.clone() for view in pair] for pair in loader]


def same(first: list, second: list) -> bool:
    return len(first) == len(second) and all(
        torch.equal(a[key], b[key]) for x, y in zip(first, second) for a, b in zip(x, y) for key in KEYS
    )


def test_val_and_test_views_stay_fixed_while_training_views_are_redrawn(structures):
    dm = module(structures)
    train, val, test = (
        batches(dm.train_dataloader()),
        batches(dm.val_dataloader()),
        batches(dm.test_dataloader()),
    )
    dm.set_epoch(3)
    assert same(batches(dm.val_dataloader()), val) and same(batches(dm.test_dataloader()), test)
    assert not same(batches(dm.train_dataloader()), train)


def test_a_resumed_run_reproduces_training_and_validation_views(structures):
    dm = module(structures)
    dm.set_epoch(2)
    state = dm.state_dict()  # written at the end of epoch 2
    dm.set_epoch(3)
    train, val = batches(dm.train_dataloader()), batches(dm.val_dataloader())
    resumed = CrystalDataModule(
        structures, cutoff=CUTOFF, batch_size=4, fractions=(0.5, 0.25, 0.25), view_transform=views()
    )
    resumed.load_state_dict(state)
    resumed.setup()
    assert resumed.epoch == 3
    assert same(batches(resumed.train_dataloader()), train) and same(batches(resumed.val_dataloader()), val)


def test_view_transforms_without_fixed_still_wrap_every_split(structures):
    class Plain:
        def wrap(self, dataset):
            return views().wrap(dataset)

    dm = CrystalDataModule(structures, cutoff=CUTOFF, view_transform=Plain())
    dm.setup()
    assert not dm.val_set.fixed and not dm.train_set.fixed
