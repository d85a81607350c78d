"""Readers, cached datasets and their invalidation, checked against ASE / pymatgen and direct graph builds."""

from __future__ import annotations

import gzip
import os
import pickle

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

import contrast
from contrast.data.io.readers import resolve_source
from contrast.data.store import build as build_module


def labelled_atoms(seed: int) -> Atoms:
    rng = np.random.default_rng(seed)
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True) if seed % 2 else bulk("NaCl", "rocksalt", a=5.6)
    atoms.rattle(0.05, seed=seed)
    atoms.info.update(id=f"s{seed}", band_gap=float(rng.uniform(0, 3)))
    results = dict(
        energy=float(rng.normal()), forces=rng.normal(size=(len(atoms), 3)), stress=rng.normal(size=6)
    )
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


@pytest.fixture(scope="session")
def frames() -> list[Atoms]:
    return [labelled_atoms(seed) for seed in range(6)]


@pytest.fixture(scope="session")
def extxyz_files(tmp_path_factory, frames) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("xyz")
    plain = str(folder / "train.extxyz")
    ase.io.write(plain, frames, format="extxyz")
    packed = str(folder / "train_gz.extxyz.gz")
    with open(plain, "rb") as source, gzip.open(packed, "wb") as target:
        target.write(source.read())
    return plain, packed


def check_against(ds, frames: list[Atoms], cutoff: float) -> None:
    assert len(ds) == len(frames)
    for k, atoms in enumerate(frames):
        item, reference = ds[k], contrast.structure_to_graph(atoms, cutoff)
        assert torch.equal(item.z, reference.z) and torch.equal(item.edge_index, reference.edge_index)
        assert torch.allclose(item.pos.double(), torch.tensor(atoms.positions), atol=1e-6)
        assert torch.equal(item.cell_shift, reference.cell_shift)
        assert item.idx.tolist() == [k]
        assert item.energy.shape == (1,) and item.energy.item() == pytest.approx(atoms.get_potential_energy())
        np.testing.assert_allclose(item.forces.numpy(), atoms.get_forces(), atol=1e-6)
        assert item.stress.shape == (1, 3, 3)
        np.testing.assert_allclose(item.stress[0].numpy(), atoms.get_stress(voigt=False), atol=1e-6)
        assert item.band_gap.item() == pytest.approx(atoms.info["band_gap"])
    assert ds.ids == [a.info["id"] for a in frames]


TARGETS = ["energy", "forces", "stress", "band_gap"]


def test_extxyz_plain_and_gzip(tmp_path, frames, extxyz_files):
    for path in extxyz_files:
        ds = contrast.load_dataset(path, cutoff=4.0, targets=TARGETS, cache_dir=tmp_path)
        check_against(ds, frames, 4.0)
        assert ds[0].pos.dtype == torch.get_default_dtype()


def test_fast_extxyz_matches_ase(extxyz_files):
    from contrast.data.io.extxyz import read_extxyz_frames

    entries = read_extxyz_frames(open(extxyz_files[0]).read(), "x", "train")
    for entry, atoms in zip(entries, ase.io.read(extxyz_files[0], index=":")):
        np.testing.assert_array_equal(entry.structure.pos, atoms.positions)
        np.testing.assert_array_equal(entry.structure.cell, atoms.cell[:])
        assert entry.properties["energy"] == atoms.get_potential_energy()


def test_memory_list_not_cached(frames):
    ds = contrast.load_dataset(frames, cutoff=4.0, targets=TARGETS)
    check_against(ds, frames, 4.0)
    assert ds.cache_path is None
    assert ds.formulas == ["NaCl", "Cu", "NaCl", "Cu", "NaCl", "Cu"]


def test_cif_poscar_glob_and_structure(tmp_path, frames):
    for k, atoms in enumerate(frames[:3]):
        ase.io.write(tmp_path / f"POSCAR_{k}", atoms, format="vasp")
    ds = contrast.load_dataset(str(tmp_path / "POSCAR_*"), cutoff=4.0, cache_dir=tmp_path / "c")
    assert ds.ids == ["POSCAR_0", "POSCAR_1", "POSCAR_2"]
    for k in range(3):
        np.testing.assert_allclose(ds.structure(k).pos, frames[k].positions, atol=1e-6)
        assert ds.atoms(k).get_chemical_formula() == frames[k].get_chemical_formula()
    structure = Structure(
        Lattice.cubic(3.6), ["Cu"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    )
    (tmp_path / "cu.cif").write_text(str(CifWriter(structure)))
    ds = contrast.load_dataset(str(tmp_path / "cu.cif"), cutoff=3.0, cache_dir=tmp_path / "c")
    assert ds[0].edge_index.shape[1] == 4 * 12  # fcc: 12 nearest neighbours at 2.55 Å


def test_csv_and_cgcnn_folder(tmp_path):
    import csv

    cifs = {
        f"m{k}": str(CifWriter(Structure(Lattice.cubic(3.0 + k / 10), ["Po"], [[0, 0, 0]]))) for k in range(3)
    }
    with open(tmp_path / "data.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["material_id", "cif", "band_gap"])
        writer.writerows([name, text, k / 2] for k, (name, text) in enumerate(cifs.items()))
    ds = contrast.load_dataset(
        str(tmp_path / "data.csv"), cutoff=3.5, targets=["band_gap"], cache_dir=tmp_path
    )
    assert ds.ids == ["m0", "m1", "m2"] and [ds[k].band_gap.item() for k in range(3)] == [0.0, 0.5, 1.0]
    folder = tmp_path / "cgcnn"
    folder.mkdir()
    for name, text in cifs.items():
        (folder / f"{name}.cif").write_text(text)
    (folder / "id_prop.csv").write_text("m0,1.5\nm1,2.5\nm2,3.5\n")
    ds = contrast.load_dataset(str(folder), cutoff=3.5, targets=["target"], cache_dir=tmp_path)
    assert [ds[k].target.item() for k in range(3)] == [1.5, 2.5, 3.5]
    assert ds[2].edge_index.shape[1] == 6  # simple cubic, a = 3.2 Å < 3.5 Å


def test_cache_reused_and_invalidated(tmp_path, frames, monkeypatch):
    path = str(tmp_path / "data.extxyz")
    ase.io.write(path, frames, format="extxyz")
    first = contrast.load_dataset(path, cutoff=4.0, targets=["energy"], cache_dir=tmp_path / "c")
    calls = []
    original = build_module.build_arrays
    monkeypatch.setattr(
        "contrast.data.dataset.build_arrays", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    again = contrast.load_dataset(path, cutoff=4.0, targets=["energy"], cache_dir=tmp_path / "c")
    assert calls == [] and again.cache_path == first.cache_path
    assert isinstance(again.arrays["edge_index"], np.memmap)
    for kwargs in [dict(cutoff=4.5), dict(targets=["forces"]), dict(on_error="skip")]:
        options = dict(cutoff=4.0, targets=["energy"], cache_dir=tmp_path / "c") | kwargs
        assert contrast.load_dataset(path, **options).cache_path != first.cache_path
    ase.io.write(path, frames[:4], format="extxyz")  # same name, new content
    os.utime(path, ns=(1, 1))
    changed = contrast.load_dataset(path, cutoff=4.0, targets=["energy"], cache_dir=tmp_path / "c")
    assert len(changed) == 4 and changed.cache_path != first.cache_path
    assert not [p for p in os.listdir(tmp_path / "c") if p.startswith(".tmp")]


def test_pickle_reopens_memory_map(tmp_path, extxyz_files):
    ds = contrast.load_dataset(extxyz_files[0], cutoff=4.0, targets=["energy"], cache_dir=tmp_path)
    clone = pickle.loads(pickle.dumps(ds))
    assert len(pickle.dumps(ds)) < 20_000  # the arrays are not pickled
    assert torch.equal(clone[3].edge_index, ds[3].edge_index)


def test_parallel_build_matches_serial(frames):
    from contrast.data.io.readers import read_entries

    entries = read_entries(resolve_source(frames * 3))
    serial, meta = build_module.build_arrays(entries, 4.0, ["forces"], workers=1)
    parallel, meta2 = build_module.build_arrays(entries, 4.0, ["forces"], workers=2)
    assert meta == meta2 and serial.keys() == parallel.keys()
    for key in serial:
        np.testing.assert_array_equal(serial[key], parallel[key])


def _die(*args):
    os._exit(1)  # a build worker killed from outside (out of memory, a signal)


def test_a_dead_build_worker_is_an_error_not_a_hang(frames, monkeypatch):
    from contrast.data.io.readers import read_entries

    entries = read_entries(resolve_source(frames * 3))
    monkeypatch.setattr(build_module, "_build_range", _die)
    with pytest.raises(RuntimeError, match="died"):
        build_module.build_arrays(entries, 4.0, ["forces"], workers=2)


def test_reduced_formula_matches_pymatgen():
    from pymatgen.core import Composition

    rng = np.random.default_rng(0)
    for _ in range(200):
        z = rng.choice(np.arange(1, 95), size=rng.integers(1, 5), replace=False).repeat(rng.integers(1, 5))
        symbols = "".join(Atoms(numbers=z).get_chemical_symbols())
        assert build_module.reduced_formula(z) == Composition(symbols).reduced_formula
    assert build_module.reduced_formula(np.array([1, 1, 8, 8])) == Composition("H2O2").reduced_formula


def test_emt_source(tmp_path):
    emt = pytest.importorskip("contrast.data.io.emt")
    if not hasattr(emt, "emt_structures"):
        pytest.skip("EMT generator not available")
    ds = contrast.load_dataset(
        "emt",
        cutoff=4.0,
        targets=["energy", "forces", "stress"],
        cache_dir=tmp_path,
        num_structures=3,
        seed=1,
    )
    assert len(ds) == 3 and ds[0].forces.shape == (ds[0].num_nodes, 3) and ds[0].stress.shape == (1, 3, 3)


def test_concurrent_loads_of_one_source_build_it_once(tmp_path):
    """Two loaders of the same file and cache at once (as the ranks of a DDP job): one builds, the other waits
    for the lock and reads the finished entry; both get the same structures."""
    import threading

    import ase.io
    from ase.build import bulk

    import contrast
    from contrast.data.store.cache import build_lock

    path = tmp_path / "cells.extxyz"
    ase.io.write(path, [bulk("Cu", "fcc", a=3.6 + 0.01 * k) for k in range(12)], format="extxyz")
    cache = tmp_path / "cache"
    results, errors = [], []

    def load():
        try:
            results.append(contrast.load_dataset(str(path), cutoff=4.0, cache_dir=cache))
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert [len(r) for r in results] == [12, 12] and list(results[0].ids) == list(results[1].ids)
    entries = list(cache.iterdir())
    assert len(entries) == 1  # one entry, built once; no lock file left
    # the lock is exclusive: a second holder waits until the first lets go
    order = []

    def second_holder():
        with build_lock(entries[0]):
            order.append("second")

    with build_lock(entries[0]):
        waiter = threading.Thread(target=second_holder)
        waiter.start()
        waiter.join(timeout=0.5)
        order.append("first")
    waiter.join(timeout=5)
    assert order == ["first", "second"]
