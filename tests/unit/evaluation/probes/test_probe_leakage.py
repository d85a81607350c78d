"""Leakage guard: copies of a test crystal in another cell are removed, true polymorphs are kept."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, make_supercell
from scipy.spatial.transform import Rotation

from contrast.data.leakage import composition_key
from contrast.evaluation.probes import remove_leakage, structure_fingerprint
from contrast.graph.convert import StructureError


def zincblende() -> Atoms:
    return bulk("ZnS", "zincblende", a=5.41)


def wurtzite() -> Atoms:
    return bulk("ZnS", "wurtzite", a=3.82, c=6.26)


def disguised(atoms: Atoms, seed: int = 0) -> Atoms:
    """The same crystal: rotated, in a non-diagonal supercell, permuted, translated and re-wrapped."""
    rng = np.random.default_rng(seed)
    copy = make_supercell(atoms, np.array([[1, 1, 0], [0, 1, 0], [0, 0, 2]]))
    rotation = Rotation.random(random_state=seed).as_matrix()
    copy.set_cell(copy.cell[:] @ rotation.T, scale_atoms=True)
    copy = copy[rng.permutation(len(copy))]
    copy.translate(rng.normal(size=3))
    copy.wrap()
    return copy


def test_composition_key_is_reduced_and_order_free():
    assert composition_key(np.array([30, 16, 16, 30])) == ((16, 1), (30, 1))
    assert composition_key(np.array([8, 22, 8, 8, 22, 8])) == ((8, 2), (22, 1))


def test_fingerprint_is_cell_choice_independent_and_separates_polymorphs():
    reference = structure_fingerprint(zincblende())
    copy = structure_fingerprint(disguised(zincblende()))
    assert reference.formula == "ZnS" and reference.spacegroup == 216
    assert copy.key == reference.key and copy.matches(reference, tol=1e-6)
    hexagonal = structure_fingerprint(wurtzite())
    assert hexagonal.spacegroup == 186 and hexagonal.key != reference.key
    rocksalt = structure_fingerprint(bulk("NaCl", "rocksalt", a=5.64))
    caesium_chloride = structure_fingerprint(bulk("NaCl", "cesiumchloride", a=3.4))
    assert rocksalt.composition == caesium_chloride.composition and not rocksalt.matches(caesium_chloride)


def test_remove_leakage_finds_disguised_copies_only():
    from pymatgen.io.ase import AseAtomsAdaptor

    test = [zincblende(), bulk("NaCl", "rocksalt", a=5.64), bulk("Si", "diamond", a=5.43)]
    pretrain = [
        disguised(zincblende(), seed=1),  # leak
        wurtzite(),  # same formula, different polymorph: keep
        bulk("NaCl", "cesiumchloride", a=3.4),  # keep
        AseAtomsAdaptor.get_structure(disguised(bulk("NaCl", "rocksalt", a=5.64), seed=2)),  # leak (pymatgen)
        bulk("Cu", "fcc", a=3.6),  # formula absent from the test set: keep
        bulk("Si", "diamond", a=5.50).repeat(
            (1, 1, 2)
        ),  # slightly expanded supercell of a test crystal: leak
        bulk("Si", "fcc", a=3.9),  # keep
    ]
    kept, n_removed = remove_leakage(pretrain, test)
    assert kept.tolist() == [1, 2, 4, 6] and n_removed == 3
    assert remove_leakage(pretrain, [])[1] == 0


def test_remove_leakage_errors_name_the_set_and_entry():
    broken = Atoms("ZnS", positions=[[0, 0, 0], [np.nan, 0, 0]], cell=np.eye(3) * 4, pbc=True)
    with pytest.raises(StructureError, match="pretrain, entry 1: NaN"):
        remove_leakage([wurtzite(), broken], [zincblende()])
    with pytest.raises(StructureError, match="test, entry 0: NaN"):
        remove_leakage([wurtzite()], [broken])
