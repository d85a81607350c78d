"""A cache entry is keyed by every file its source reads: an overwritten CIF of a CGCNN folder, or a changed
member of a folder or glob, is read again, even when its size and modification time stay the same."""

from __future__ import annotations

import os

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

import contrast


def write_cif(path, a: float) -> None:
    structure = Structure(
        Lattice.cubic(a), ["Cu"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    )
    path.write_text(str(CifWriter(structure)))


def overwrite_keeping_stamp(path, write) -> None:
    """Rewrite a file with content of the same size and put its modification time back."""
    before = os.stat(path)
    write()
    assert os.stat(path).st_size == before.st_size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def first_cell(source, cache) -> np.ndarray:
    return contrast.load_dataset(source, cutoff=3.0, cache_dir=cache).structure(0).cell


def test_an_overwritten_cif_of_a_cgcnn_folder_is_read_again(tmp_path):
    folder = tmp_path / "cgcnn"
    folder.mkdir()
    for k in range(3):
        write_cif(folder / f"c{k}.cif", 3.61)
    (folder / "id_prop.csv").write_text("c0,1.0\nc1,2.0\nc2,3.0\n")
    np.testing.assert_allclose(np.diag(first_cell(str(folder), tmp_path / "cache")), 3.61)
    overwrite_keeping_stamp(folder / "c0.cif", lambda: write_cif(folder / "c0.cif", 3.71))
    np.testing.assert_allclose(np.diag(first_cell(str(folder), tmp_path / "cache")), 3.71)


@pytest.mark.parametrize("kind", ["folder", "glob"])
def test_a_changed_member_of_a_folder_or_glob_is_read_again(tmp_path, kind):
    folder = tmp_path / "cifs"
    folder.mkdir()
    for k in range(2):
        write_cif(folder / f"s{k}.cif", 3.61)
    source = str(folder) if kind == "folder" else str(folder / "*.cif")
    np.testing.assert_allclose(np.diag(first_cell(source, tmp_path / "cache")), 3.61)
    overwrite_keeping_stamp(folder / "s0.cif", lambda: write_cif(folder / "s0.cif", 3.71))
    np.testing.assert_allclose(np.diag(first_cell(source, tmp_path / "cache")), 3.71)
