import numpy as np
import pytest
from ase.calculators.emt import EMT

from contrast.data.io.emt import emt_structures
from contrast.graph.convert import structures_to_graphs


@pytest.fixture(scope="module")
def structures():
    return emt_structures(24, seed=3)


def test_deterministic_and_prefix_stable(structures):
    again = emt_structures(24, seed=3)
    shorter = emt_structures(5, seed=3)
    other = emt_structures(5, seed=4)
    for a, b in zip(structures, again):
        assert a.info["id"] == b.info["id"]
        np.testing.assert_array_equal(a.numbers, b.numbers)
        np.testing.assert_array_equal(a.positions, b.positions)
        assert a.get_potential_energy() == b.get_potential_energy()
    for a, b in zip(structures, shorter):
        np.testing.assert_array_equal(a.positions, b.positions)
    assert any(len(a) != len(b) or not np.allclose(a.positions, b.positions) for a, b in zip(shorter, other))


def test_labels_are_emt(structures):
    for atoms in structures[:4]:
        fresh = atoms.copy()
        fresh.calc = EMT()
        assert atoms.get_potential_energy() == pytest.approx(fresh.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(atoms.get_forces(), fresh.get_forces(), atol=1e-10)
        np.testing.assert_allclose(atoms.get_stress(voigt=False), fresh.get_stress(voigt=False), atol=1e-10)


def test_variety_and_ids(structures):
    sizes = {len(a) for a in structures}
    assert max(sizes) <= 32 and min(sizes) >= 3 and len(sizes) > 3
    assert any(len(set(a.numbers)) == 2 for a in structures)  # alloys
    assert all(np.abs(a.get_forces()).max() > 1e-4 for a in structures)  # rattled
    ids = [a.info["id"] for a in structures]
    assert len(set(ids)) == len(ids) and ids[0] == "emt-3-00000"
    assert len(structures_to_graphs(structures, cutoff=5.0)) == len(structures)


def test_elements_and_errors():
    assert {int(z) for a in emt_structures(6, elements=["Cu"]) for z in a.numbers} == {29}
    with pytest.raises(ValueError, match="Fe"):
        emt_structures(2, elements=["Cu", "Fe"])
    assert emt_structures(0) == []
