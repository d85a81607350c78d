"""Errors where the cause is: elements the encoders cannot embed are bad input at read time, and embed /
neighbours name the position of a bad structure and take one structure as well as a list."""

from __future__ import annotations

import ase.io
import pytest
import torch
from ase.build import bulk
from pymatgen.io.ase import AseAtomsAdaptor

import contrast
from contrast.graph.convert import MAX_Z, StructureError
from contrast.nn.painn import PaiNN


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return PaiNN(hidden_dim=8, num_layers=1, num_rbf=4, cutoff=4.0).double().eval()


def with_element(symbol: str):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.symbols[1] = symbol
    return atoms


def test_an_element_beyond_the_encoders_is_refused_at_read_time(tmp_path):
    path = tmp_path / "heavy.extxyz"
    ase.io.write(path, [bulk("Cu", "fcc", a=3.6, cubic=True), with_element("Md")], format="extxyz")
    with pytest.raises(
        StructureError, match=r"heavy.extxyz, entry 1.*element Md \(Z=101\) cannot be embedded"
    ):
        contrast.load_dataset(str(path), cutoff=4.0, cache_dir=tmp_path / "c")
    ds = contrast.load_dataset(str(path), cutoff=4.0, cache_dir=tmp_path / "c", on_error="skip")
    assert len(ds) == 1 and "Md" in ds.skipped[0][1]
    assert MAX_Z == 100


def test_embed_names_the_position_of_a_bad_structure(encoder):
    good = bulk("Cu", "fcc", a=3.6, cubic=True)
    with pytest.raises(StructureError, match=r"structure 1 of those given: element Og \(Z=118\)"):
        contrast.embed(encoder, [good, with_element("Og"), good])
    molecule = good.copy()
    molecule.pbc = False
    with pytest.raises(StructureError, match="structure 2 of those given: not periodic"):
        contrast.embed(encoder, [good, good, molecule])


def test_embed_and_neighbours_take_one_structure(encoder):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    structure = AseAtomsAdaptor.get_structure(bulk("Ni", "fcc", a=3.5, cubic=True))
    one = contrast.embed(encoder, atoms)
    assert one.shape == (1, encoder.embedding_dim)
    torch.testing.assert_close(one, contrast.embed(encoder, [atoms]))
    assert contrast.embed(encoder, structure).shape == (1, encoder.embedding_dim)
    database = [atoms, AseAtomsAdaptor.get_atoms(structure), bulk("Al", "fcc", a=4.05, cubic=True)]
    indices, similarities = contrast.neighbours(encoder, atoms, database, k=2)
    assert indices.shape == (1, 2) and int(indices[0, 0]) == 0
    assert similarities[0, 0] == pytest.approx(1.0)


def test_the_calculator_names_an_element_it_cannot_embed():
    from contrast.nn.heads import EnergyHead, EnergyModel
    from contrast.pretrained.calculator import ContrastCalculator

    torch.manual_seed(0)
    encoder = PaiNN(hidden_dim=8, num_layers=1, num_rbf=4, cutoff=4.0)
    calc = ContrastCalculator(EnergyModel(encoder, EnergyHead(in_dim=encoder.feature_dim, hidden_dim=8)))
    atoms = with_element("Lr")
    atoms.calc = calc
    with pytest.raises(StructureError, match=r"element Lr \(Z=103\) cannot be embedded"):
        atoms.get_potential_energy()
