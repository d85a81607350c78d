"""Composition features: atomic numbers, counts and fractions (column Z), element-property statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from torch_geometric.data import Data

from contrast.data.composition import (
    ELEMENT_PROPERTIES,
    ELEMENT_STATISTICS_NAMES,
    MAX_Z,
    atomic_numbers,
    element_counts,
    element_fractions,
    element_property_table,
    element_statistics,
)

# Pauling electronegativities, written down by hand (not read from pymatgen).
X = {"Na": 0.93, "Cl": 3.16, "Fe": 1.83, "O": 3.44}


def column(name: str) -> int:
    return ELEMENT_STATISTICS_NAMES.index(name)


@pytest.fixture(scope="module")
def rocksalt():
    return bulk("NaCl", "rocksalt", a=5.64)


def test_every_input_kind_gives_the_same_numbers(rocksalt):
    from pymatgen.io.ase import AseAtomsAdaptor

    items = [
        rocksalt,
        AseAtomsAdaptor.get_structure(rocksalt),
        Data(z=torch.tensor([11, 17])),
        torch.tensor([11, 17]),
        np.array([11.0, 17.0]),
        [11, 17],
    ]
    for item in items:
        z = atomic_numbers(item)
        assert z.dtype == np.int64 and z.tolist() == [11, 17]


def test_counts_and_fractions_use_column_z(rocksalt):
    items = [rocksalt.repeat((2, 1, 1)), Data(z=torch.tensor([8, 22, 8])), np.array([26, 26, 26, 8, 8, 8, 8])]
    counts = element_counts(items)
    assert counts.shape == (3, MAX_Z + 1) and counts.dtype == np.float64
    expected = np.zeros((3, MAX_Z + 1))
    expected[0, 11] = expected[0, 17] = 2
    expected[1, 8], expected[1, 22] = 2, 1
    expected[2, 26], expected[2, 8] = 3, 4
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_allclose(element_fractions(items), expected / expected.sum(axis=1, keepdims=True))
    assert (element_fractions(items)[:, 0] == 0).all()  # column 0 is no element
    assert element_counts([np.array([3, 40])], max_z=40).shape == (1, 41)
    assert element_fractions([]).shape == (0, MAX_Z + 1)
    assert element_statistics([]).shape == (0, len(ELEMENT_STATISTICS_NAMES))


def test_errors_name_the_entry():
    from pymatgen.core import Lattice, Structure

    with pytest.raises(ValueError, match="entry 1: atomic number 0 outside 1..118"):
        element_counts([np.array([1]), np.array([0, 1])])
    with pytest.raises(ValueError, match="entry 0: atomic number 119 outside"):
        element_fractions([np.array([119])])
    with pytest.raises(ValueError, match="entry 2: atomic number 50 outside 1..40"):
        element_counts([[1], [2], [50]], max_z=40)
    with pytest.raises(ValueError, match="entry 0: no atoms"):
        element_statistics([np.array([], dtype=int)])
    with pytest.raises(ValueError, match="entry 1: atomic numbers are not integers"):
        element_fractions([[1], np.array([1.5])])
    disordered = Structure(Lattice.cubic(3.0), [{"Fe": 0.5, "Ni": 0.5}], [[0, 0, 0]])
    with pytest.raises(ValueError, match="entry 0: disordered"):
        element_statistics([disordered])


def test_statistics_by_hand():
    features = element_statistics([np.array([11, 17]), np.array([26, 26, 8, 8, 8])])  # NaCl, Fe2O3
    assert features.shape == (2, 4 * len(ELEMENT_PROPERTIES))
    nacl_mean = 0.5 * X["Na"] + 0.5 * X["Cl"]
    fe2o3_mean = 0.4 * X["Fe"] + 0.6 * X["O"]
    expected = {
        "mean_electronegativity": [nacl_mean, fe2o3_mean],
        "deviation_electronegativity": [
            0.5 * abs(X["Na"] - nacl_mean) + 0.5 * abs(X["Cl"] - nacl_mean),
            0.4 * abs(X["Fe"] - fe2o3_mean) + 0.6 * abs(X["O"] - fe2o3_mean),
        ],
        "min_electronegativity": [X["Na"], X["Fe"]],
        "max_electronegativity": [X["Cl"], X["O"]],
        "mean_group": [9.0, 0.4 * 8 + 0.6 * 16],  # Na 1, Cl 17; Fe 8, O 16
        "deviation_row": [0.0, 0.4 * abs(4 - 2.8) + 0.6 * abs(2 - 2.8)],  # Na, Cl row 3; Fe row 4, O row 2
        "mean_valence_electrons": [0.5 * 1 + 0.5 * 7, 0.4 * 8 + 0.6 * 6],
        "max_max_oxidation_state": [7.0, 3.0],  # Cl +7; Fe +3
        "min_min_oxidation_state": [-1.0, -2.0],
    }
    for name, values in expected.items():
        np.testing.assert_allclose(features[:, column(name)], values, rtol=1e-12, err_msg=name)


def test_statistics_are_invariant_to_supercells_and_atom_order(rocksalt):
    from pymatgen.io.ase import AseAtomsAdaptor

    corundum = np.array([26, 26, 8, 8, 8])
    supercell = rocksalt.repeat((2, 3, 1))
    shuffled = supercell[np.random.default_rng(0).permutation(len(supercell))]
    items = [
        rocksalt,
        supercell,
        shuffled,
        AseAtomsAdaptor.get_structure(supercell),
        corundum,
        corundum[::-1],
    ]
    features = element_statistics(items)
    for row in features[1:4]:
        np.testing.assert_array_equal(row, features[0])
    np.testing.assert_array_equal(features[4], features[5])
    np.testing.assert_array_equal(element_statistics([np.tile(corundum, 4)])[0], features[4])


def test_every_element_has_finite_features():
    table = element_property_table()
    assert table.shape == (MAX_Z + 1, len(ELEMENT_PROPERTIES)) and np.isfinite(table).all()
    assert not table.flags.writeable and element_property_table() is table  # built once
    features = element_statistics([[z] for z in range(1, 95)])
    assert np.isfinite(features).all()
    assert np.isfinite(element_statistics([[z, 118] for z in range(1, MAX_Z + 1)])).all()
    # A pure element: mean, min and max are its properties and the deviation is zero.
    blocks = features.reshape(94, 4, len(ELEMENT_PROPERTIES))
    for k in (0, 2, 3):
        np.testing.assert_array_equal(blocks[:, k], table[1:95])
    assert (blocks[:, 1] == 0).all()
    np.testing.assert_array_equal(blocks[:, 0, 0], np.arange(1, 95))  # atomic_number comes first


def test_statistics_beat_fractions_on_an_electronegativity_target():
    from pymatgen.core.periodic_table import Element
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    pool = [z for z in range(1, 84) if z not in (2, 10, 18, 36, 54)]  # elements with a Pauling X
    items = [rng.choice(pool, size=rng.integers(2, 4), replace=False) for _ in range(200)]
    items = [np.repeat(z, rng.integers(1, 4, size=len(z))) for z in items]
    x = {z: Element.from_Z(int(z)).X for z in pool}
    y = np.array([max(x[z] for z in zs) - min(x[z] for z in zs) for zs in items])  # ionicity

    def test_mae(features: np.ndarray) -> float:
        model = make_pipeline(StandardScaler(), RidgeCV(np.logspace(-6, 3, 19))).fit(features[:150], y[:150])
        return float(np.abs(model.predict(features[150:]) - y[150:]).mean())

    statistics, fractions = test_mae(element_statistics(items)), test_mae(element_fractions(items))
    assert statistics < 0.05 < 0.3 < fractions
