"""What each augmentation does, checked against independent numpy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from augment_crystals import CUTOFF, periodic_distances
from pymatgen.core.periodic_table import Element

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
    random_rotation,
    rebuild_graph,
)


def frac_coords(data) -> np.ndarray:
    return data.pos.numpy() @ np.linalg.inv(data.cell[0].numpy())


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_position_noise_has_the_requested_spread(crystals):
    data = crystals["rock_salt"]
    steps = np.concatenate(
        [(PositionNoise(sigma=0.07)(data, gen(s)).pos - data.pos).numpy().ravel() for s in range(200)]
    )
    assert abs(steps.std() - 0.07) < 0.005 and abs(steps.mean()) < 0.005
    out = PositionNoise(sigma=0.07)(data, gen(0))
    assert torch.equal(out.z, data.z) and torch.equal(out.cell, data.cell)


@pytest.mark.parametrize("seed", range(5))
def test_strain_keeps_fractional_coordinates(seed, crystals):
    data = crystals["triclinic"]
    out = LatticeStrain(max_strain=0.05)(data, gen(seed))
    np.testing.assert_allclose(frac_coords(out), frac_coords(data), atol=1e-12)
    deformation = np.linalg.solve(data.cell[0].numpy(), out.cell[0].numpy())  # cell' = cell @ F
    np.testing.assert_allclose(deformation, deformation.T, atol=1e-12)
    strain = deformation - np.eye(3)
    assert np.abs(strain).max() <= 0.05 + 1e-12 and np.abs(strain).max() > 0


@pytest.mark.parametrize("seed", range(5))
def test_rotation_keeps_distances_and_lattice_shape(seed, crystals):
    data = crystals["triclinic"]
    out = RandomRotation()(data, gen(seed))
    gram = lambda c: c @ c.T  # noqa: E731
    np.testing.assert_allclose(gram(out.cell[0].numpy()), gram(data.cell[0].numpy()), atol=1e-10)
    np.testing.assert_allclose(frac_coords(out), frac_coords(data), atol=1e-10)
    assert np.linalg.det(out.cell[0].numpy()) == pytest.approx(np.linalg.det(data.cell[0].numpy()))
    np.testing.assert_allclose(periodic_distances(out), periodic_distances(data), atol=1e-9)
    assert not np.allclose(out.pos.numpy(), data.pos.numpy())


def test_rotations_are_proper_and_uniform():
    matrices = torch.stack([random_rotation(gen(s)) for s in range(2000)])  # [S, 3, 3]
    eye = torch.eye(3, dtype=torch.float64).expand_as(matrices)
    torch.testing.assert_close(matrices @ matrices.transpose(1, 2), eye)
    torch.testing.assert_close(torch.linalg.det(matrices), torch.ones(2000, dtype=torch.float64))
    # Haar measure: the mean rotation vanishes.
    assert matrices.mean(0).abs().max() < 0.06
    small = torch.stack([random_rotation(gen(s), max_angle=10.0) for s in range(50)])
    angles = torch.rad2deg(torch.arccos(((small.diagonal(dim1=1, dim2=2).sum(1) - 1) / 2).clamp(-1, 1)))
    assert angles.max() <= 10.0 + 1e-6


@pytest.mark.parametrize("name", ["rock_salt", "silicon", "triclinic"])
def test_supercell_respects_budget_and_repeats_the_crystal(name, crystals):
    data = crystals[name]
    transform = RandomSupercell(max_atoms=20, max_repeat=3)
    seen = set()
    for seed in range(30):
        out = transform(data, gen(seed))
        n = out.z.shape[0]
        assert n <= 20 and n % data.num_nodes == 0
        repeats = n // data.num_nodes
        seen.add(repeats)
        volume = abs(np.linalg.det(out.cell[0].numpy()))
        assert volume == pytest.approx(repeats * abs(np.linalg.det(data.cell[0].numpy())))
        np.testing.assert_array_equal(np.bincount(out.z.numpy()), repeats * np.bincount(data.z.numpy()))
        if seed < 3:  # the same periodic crystal: each atom keeps its environment
            ref = np.repeat(periodic_distances(data), repeats)
            np.testing.assert_allclose(periodic_distances(out), ref, atol=1e-9)
    assert len(seen) > 1 or data.num_nodes * 2 > 20


def test_supercell_at_budget_is_a_copy(crystals):
    data = crystals["rock_salt"]
    out = RandomSupercell(max_atoms=8)(data, gen(0))
    assert torch.equal(out.pos, data.pos)


@pytest.mark.parametrize("seed", range(5))
def test_origin_shift_wraps_into_the_cell_and_keeps_the_crystal(seed, crystals):
    data = crystals["triclinic"]
    out = OriginShift()(data, gen(seed))
    frac = frac_coords(out)
    assert (frac >= -1e-12).all() and (frac < 1 + 1e-12).all()
    delta = frac - frac_coords(data)
    delta -= np.round(delta - delta[0])  # one common shift modulo lattice vectors
    np.testing.assert_allclose(delta, np.broadcast_to(delta[0], delta.shape), atol=1e-10)
    np.testing.assert_allclose(periodic_distances(out), periodic_distances(data), atol=1e-9)


def test_site_removal_keeps_at_least_one_atom(crystals):
    for name, data in crystals.items():
        for seed in range(10):
            out = SiteRemoval(fraction=1.0)(data, gen(seed))
            assert out.z.shape[0] == 1, name


def test_site_removal_keeps_a_subset_at_the_expected_rate(crystals):
    data = crystals["rock_salt"]
    rows = {tuple(np.round(p, 9)) for p in data.pos.numpy()}
    removed = []
    for seed in range(300):
        out = SiteRemoval(fraction=0.3)(data, gen(seed))
        assert {tuple(np.round(p, 9)) for p in out.pos.numpy()} <= rows
        removed.append(8 - out.z.shape[0])
    assert np.mean(removed) == pytest.approx(0.3 * 8, abs=0.2)


def test_substitution_keeps_group_and_follows_the_table(crystals):
    data = crystals["triclinic"]  # Ge, O, S, Se, Cu
    changed = 0
    for seed in range(50):
        out = SpeciesSubstitution(fraction=0.5)(data, gen(seed))
        for before, after in zip(data.z.tolist(), out.z.tolist()):
            assert Element.from_Z(after).group == Element.from_Z(before).group
            changed += before != after
        torch.testing.assert_close(out.pos, data.pos)
    assert changed > 0
    custom = SpeciesSubstitution(fraction=1.0, table={"Cl": ["Br"], 11: ["K"]})
    out = custom(crystals["rock_salt"], gen(0))
    assert out.z.tolist() == [19] * 4 + [35] * 4
    assert "table='custom'" in repr(custom)


def test_atom_mask_sets_the_mask_token_only(crystals):
    data = crystals["rock_salt"]
    counts = []
    for seed in range(200):
        out = AtomMask(fraction=0.25, mask_index=0)(data, gen(seed))
        masked = out.z == 0
        assert torch.equal(out.z[~masked], data.z[~masked])
        assert torch.equal(out.edge_index, data.edge_index) and torch.equal(out.pos, data.pos)
        counts.append(int(masked.sum()))
    assert np.mean(counts) == pytest.approx(2.0, abs=0.2)


def edge_set(data) -> set:
    j, i = data.edge_index.tolist()
    shifts = [tuple(int(round(v)) for v in s) for s in data.cell_shift.tolist()]
    return set(zip(j, i, shifts))


@pytest.mark.parametrize("seed", range(5))
def test_symmetric_edge_drop_removes_whole_pairs(seed, crystals):
    data = crystals["triclinic"]
    out = EdgeDrop(fraction=0.4, symmetric=True)(data, gen(seed))
    kept = edge_set(out)
    assert kept < edge_set(data)
    for j, i, s in kept:
        assert (i, j, tuple(-v for v in s)) in kept

    # cell_shift travelled with edge_index: kept vectors are a subset of the original ones.
    def vectors(d):
        src, dst = d.edge_index
        return (d.pos[src] - d.pos[dst] + d.cell_shift @ d.cell[0]).numpy()

    original = {tuple(np.round(v, 8)) for v in vectors(data)}
    assert {tuple(np.round(v, 8)) for v in vectors(out)} <= original


def test_directed_edge_drop_rate(crystals):
    data = crystals["rock_salt"]
    total = data.edge_index.shape[1]
    kept = [EdgeDrop(fraction=0.25, symmetric=False)(data, gen(s)).edge_index.shape[1] for s in range(50)]
    assert np.mean(kept) / total == pytest.approx(0.75, abs=0.03)
    asymmetric = any(
        any((i, j, tuple(-v for v in s)) not in edge_set(o) for j, i, s in edge_set(o))
        for o in (EdgeDrop(fraction=0.25, symmetric=False)(data, gen(s)) for s in range(5))
    )
    assert asymmetric


def test_rebuild_after_strain_matches_a_fresh_graph(crystals):
    data = crystals["silicon"]
    out = rebuild_graph(LatticeStrain(max_strain=0.05)(data, gen(1)), CUTOFF)
    assert out.edge_index.shape[1] == len(periodic_distances(out))
