"""Bad input raises an error naming the file, the entry and the reason; with skipping it is reported."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from pymatgen.core import DummySpecies, Lattice, Structure
from pymatgen.io.cif import CifWriter

import contrast
from contrast.graph.convert import StructureError

GOOD = (
    'Lattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3 id=good pbc="T T T"\nCu 0 0 0\nCu 1.5 1.5 0'
)


def frame(lattice: str, atoms: list[str], extra: str = 'pbc="T T T"') -> str:
    header = f'Lattice="{lattice}" Properties=species:S:1:pos:R:3 {extra}' if lattice else extra
    return "\n".join([str(len(atoms)), header, *atoms])


def extxyz(tmp_path, name: str, bad_frame: str) -> str:
    path = tmp_path / name
    path.write_text(f"2\n{GOOD}\n{bad_frame}\n")
    return str(path)


def cif_text(structure: Structure) -> str:
    return str(CifWriter(structure))


BAD_FRAMES = {
    "nan": (frame("3 0 0 0 3 0 0 0 3", ["Cu 0 0 0", "Cu nan 1.5 0"]), "NaN"),
    "close": (frame("3 0 0 0 3 0 0 0 3", ["Cu 0 0 0", "Cu 0.3 0 0"]), "closer than 0.5"),
    "flat": (frame("3 0 0 6 0 0 0 0 3", ["Cu 0 0 0", "Cu 1.5 0 1.5"]), "zero-volume or degenerate"),
    "element": (frame("3 0 0 0 3 0 0 0 3", ["Cu 0 0 0", "Xx 1.5 1.5 0"]), "unknown element"),
    "molecule": (frame("", ["H 0 0 0", "H 0 0 0.74"], extra="molecule"), "not periodic"),
    "garbage": ("two\nnot a frame at all", "instead of an atom-count line"),
    "truncated": ("5\n" + GOOD.split("\n")[0].replace("id=good", "id=cut") + "\nCu 0 0 0", "truncated frame"),
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
def test_bad_extxyz_frame_raises_with_file_entry_reason(tmp_path, case):
    bad, reason = BAD_FRAMES[case]
    path = extxyz(tmp_path, f"{case}.extxyz", bad)
    with pytest.raises(StructureError, match=reason) as info:
        contrast.load_dataset(path, cutoff=4.0, cache_dir=tmp_path / "cache")
    assert f"{case}.extxyz" in str(info.value) and "entry 1" in str(info.value)


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
def test_bad_extxyz_frame_is_skipped_and_reported(tmp_path, caplog, case):
    path = extxyz(tmp_path, f"{case}.extxyz", BAD_FRAMES[case][0])
    with caplog.at_level(logging.WARNING):
        ds = contrast.load_dataset(
            path, cutoff=4.0, on_error="skip", cache_dir=tmp_path / "c", report_dir=tmp_path
        )
    assert len(ds) == 1 and ds.ids == ["good"]
    assert len(ds.skipped) == 1 and BAD_FRAMES[case][1] in ds.skipped[0][1]
    report = json.loads(open(ds.report_path).read())
    assert report["skipped"] == 1 and report["entries"][0]["entry"].startswith("1")
    assert json.loads((tmp_path / "data_report.json").read_text())["skipped"] == 1
    assert "skipped 1" in caplog.text


LONELY = frame("20 0 0 0 20 0 0 0 20", ["Cu 0 0 0", "Cu 10 10 10"])


def test_lonely_atom_is_bad_input_only_when_neighbours_are_required(tmp_path):
    path = extxyz(tmp_path, "lonely.extxyz", LONELY)
    assert len(contrast.load_dataset(path, cutoff=4.0, cache_dir=tmp_path / "c")) == 2  # legal by default
    with pytest.raises(StructureError, match="no neighbour within the cutoff") as info:
        contrast.load_dataset(path, cutoff=4.0, cache_dir=tmp_path / "c", require_neighbours=True)
    assert "lonely.extxyz" in str(info.value) and "entry 1" in str(info.value)
    ds = contrast.load_dataset(
        path, cutoff=4.0, on_error="skip", cache_dir=tmp_path / "c", require_neighbours=True
    )
    assert ds.ids == ["good"] and "no neighbour" in ds.skipped[0][1]


def cu_structure() -> Structure:
    return Structure(Lattice.cubic(3.6), ["Cu"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])


def test_truncated_cif(tmp_path):
    text = cif_text(cu_structure())
    (tmp_path / "cut.cif").write_text(text[: text.index("_cell_angle_alpha")])
    with pytest.raises(StructureError, match=r"cut\.cif, entry 0.*(truncated|parse)"):
        contrast.load_dataset(str(tmp_path / "cut.cif"), cache_dir=tmp_path / "cache")


def test_partial_occupancy_cif(tmp_path):
    structure = cu_structure()
    structure.replace(0, {"Cu": 0.5, "Au": 0.5})
    (tmp_path / "alloy.cif").write_text(cif_text(structure))
    with pytest.raises(StructureError, match=r"alloy\.cif, entry 0 \(alloy\): disordered"):
        contrast.load_dataset(str(tmp_path / "alloy.cif"), cache_dir=tmp_path / "cache")


def test_dummy_species_in_memory():
    structure = cu_structure()
    structure.replace(1, DummySpecies("X"))
    with pytest.raises(StructureError, match=r"entry 1: dummy or unknown species"):
        contrast.load_dataset([cu_structure(), structure])


@pytest.mark.parametrize("name", ["empty.extxyz", "empty.cif", "POSCAR", "empty.csv"])
def test_empty_file(tmp_path, name):
    (tmp_path / name).write_text("")
    with pytest.raises(StructureError, match=rf"{name}, entry 0: .*empty"):
        contrast.load_dataset(str(tmp_path / name), cache_dir=tmp_path / "cache")


def test_unparsable_poscar(tmp_path):
    (tmp_path / "POSCAR").write_text("this is\nnot a poscar\n1.0\n")
    with pytest.raises(StructureError, match=r"POSCAR, entry 0: cannot parse"):
        contrast.load_dataset(str(tmp_path / "POSCAR"), cache_dir=tmp_path / "cache")


def test_every_entry_bad_fails_clearly(tmp_path):
    path = tmp_path / "all_bad.extxyz"
    path.write_text(BAD_FRAMES["close"][0] + "\n" + BAD_FRAMES["nan"][0] + "\n")
    with pytest.raises(StructureError, match=r"all_bad\.extxyz.*all 2 entries are bad"):
        contrast.load_dataset(str(path), on_error="skip", cache_dir=tmp_path / "cache")


def test_missing_target_named(tmp_path):
    path = extxyz(
        tmp_path, "labels.extxyz", frame("3 0 0 0 3 0 0 0 3", ["Cu 0 0 0"], 'band_gap=1.0 pbc="T T T"')
    )
    with pytest.raises(
        StructureError, match=r"labels\.extxyz, entry 0 \(good\): target 'band_gap' is missing"
    ):
        contrast.load_dataset(path, targets=["band_gap"], cache_dir=tmp_path / "cache")
    ds = contrast.load_dataset(path, targets=["band_gap"], on_error="skip", cache_dir=tmp_path / "cache")
    assert len(ds) == 1 and ds[0].band_gap.tolist() == [1.0]


def test_bad_on_error_value():
    with pytest.raises(ValueError, match="on_error"):
        contrast.load_dataset([cu_structure()], on_error="ignore")


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError):
        contrast.load_dataset(str(tmp_path / "nope.extxyz"))
    assert np.isfinite(1.0)
