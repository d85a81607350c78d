"""Properties every augmentation shares: copies, determinism, repr, valid rebuilt graphs."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from augment_crystals import CUTOFF, periodic_distances

from contrast.augment import (
    AtomMask,
    EdgeDrop,
    LatticeStrain,
    OriginShift,
    PositionNoise,
    RandomRotation,
    RandomSupercell,
    SiteRemoval,
    SpeciesSubstitution,
    rebuild_graph,
)


def structure_transforms():
    return [
        PositionNoise(p=1.0, sigma=0.05),
        LatticeStrain(p=1.0, max_strain=0.05),
        RandomSupercell(p=1.0, max_atoms=16, max_repeat=2),
        OriginShift(p=1.0),
        RandomRotation(p=1.0),
        SiteRemoval(p=1.0, fraction=0.3),
        SpeciesSubstitution(p=1.0, fraction=1.0),
    ]


def graph_transforms():
    return [
        AtomMask(p=1.0, fraction=0.5),
        EdgeDrop(p=1.0, fraction=0.3),
        EdgeDrop(p=1.0, fraction=0.3, symmetric=False),
    ]


ALL = structure_transforms() + graph_transforms()
IDS = [repr(t) for t in ALL]
EXPECTED_REPRS = [
    "PositionNoise(p=1.0, sigma=0.05)",
    "LatticeStrain(p=1.0, max_strain=0.05)",
    "RandomSupercell(p=1.0, max_atoms=16, max_repeat=2)",
    "OriginShift(p=1.0, max_shift=1.0)",
    "RandomRotation(p=1.0, max_angle=180.0)",
    "SiteRemoval(p=1.0, fraction=0.3)",
    "SpeciesSubstitution(p=1.0, fraction=1.0, table='default', radius_tolerance=0.15)",
    "AtomMask(p=1.0, fraction=0.5, mask_index=0)",
    "EdgeDrop(p=1.0, fraction=0.3, symmetric=True)",
    "EdgeDrop(p=1.0, fraction=0.3, symmetric=False)",
]


def snapshot(data):
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in data.items()}


def same(a, b) -> bool:
    if set(a.keys()) != set(b.keys()):
        return False
    return all(torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a.keys())


def test_reprs_are_deterministic():
    assert [repr(t) for t in structure_transforms() + graph_transforms()] == EXPECTED_REPRS
    assert [repr(t) for t in ALL] == EXPECTED_REPRS


@pytest.mark.parametrize("transform", ALL, ids=IDS)
@pytest.mark.parametrize("name", ["rock_salt", "silicon", "triclinic"])
def test_input_untouched_and_deterministic(transform, name, crystals):
    data = crystals[name]
    before = snapshot(data)
    first = transform(data, torch.Generator().manual_seed(3))
    second = transform(data, torch.Generator().manual_seed(3))
    assert same(snapshot(data), before), "the input was modified"
    assert same(snapshot(first), snapshot(second)), "the same seed gave different results"
    assert first is not data and first.pos.data_ptr() != data.pos.data_ptr()
    assert torch.equal(first.idx, data.idx)  # graph-level bookkeeping survives


@pytest.mark.parametrize("transform", structure_transforms(), ids=repr)
def test_different_seeds_differ(transform, crystals):
    data = crystals["triclinic"]
    views = [transform(data, torch.Generator().manual_seed(s)) for s in range(6)]
    keys = {(tuple(v.z.tolist()), tuple(np.round(v.pos.numpy().ravel(), 6))) for v in views}
    assert len(keys) > 1


@pytest.mark.parametrize("transform", ALL, ids=IDS)
def test_probability_zero_is_identity(transform, crystals):
    data = crystals["triclinic"]
    params = {k: v for k, v in vars(transform).items() if k not in ("p", "table", "custom_table")}
    if isinstance(transform, SpeciesSubstitution):
        params.pop("radius_tolerance")
    off = type(transform)(p=0.0, **params)
    out = off(data, torch.Generator().manual_seed(0))
    assert same(snapshot(out), snapshot(data))


@pytest.mark.parametrize("transform", structure_transforms(), ids=repr)
@pytest.mark.parametrize("name", ["rock_salt", "silicon", "triclinic"])
def test_rebuilt_graph_follows_contract(transform, name, crystals):
    view = rebuild_graph(transform(crystals[name], torch.Generator().manual_seed(11)), CUTOFF)
    n = view.z.shape[0]
    assert view.z.dtype == torch.long and view.pos.shape == (n, 3) and view.cell.shape == (1, 3, 3)
    assert view.pos.dtype == torch.float64 and view.num_nodes == n
    assert view.edge_index.shape[0] == 2 and view.cell_shift.shape == (view.edge_index.shape[1], 3)
    j, i = view.edge_index
    vec = view.pos[j] - view.pos[i] + view.cell_shift @ view.cell[0]  # [E, 3]
    dist = vec.norm(dim=1)
    assert (dist <= CUTOFF + 1e-9).all() and (dist > 0.5).all()
    assert not ((i == j) & (view.cell_shift.abs().sum(1) == 0)).any(), "an atom's own zero-shift image"
    assert torch.equal(view.idx, crystals[name].idx)
    # Every image within the cutoff is present.
    np.testing.assert_allclose(np.sort(dist.numpy()), periodic_distances(view), atol=1e-9)


@pytest.mark.parametrize("transform", ALL, ids=IDS)
def test_picklable(transform, crystals):
    copy = pickle.loads(pickle.dumps(transform))
    assert repr(copy) == repr(transform)
    a = transform(crystals["rock_salt"], torch.Generator().manual_seed(5))
    b = copy(crystals["rock_salt"], torch.Generator().manual_seed(5))
    assert same(snapshot(a), snapshot(b))


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="probability"):
        PositionNoise(p=1.5)
    with pytest.raises(ValueError, match="fraction"):
        SiteRemoval(fraction=-0.1)
    with pytest.raises(ValueError, match="max_strain"):
        LatticeStrain(max_strain=0.9)
    with pytest.raises(ValueError, match="partner"):
        SpeciesSubstitution(table={"Si": "Ge"})
