"""Streaming builds: shards cut at the same frames on every run, parallel, resumable, one dataset over many
files, bad entries counted across shards."""

from __future__ import annotations

import json
import os
import shutil

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from omegaconf import OmegaConf

import contrast
from contrast.data.io import stream
from contrast.data.io.extxyz import scan_frames
from contrast.data.io.readers import resolve_source
from contrast.data.store import shards
from contrast.data.store.build import BuildSettings
from contrast.graph.convert import StructureError

CUTOFF = 4.0
GOOD = 'Lattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3 pbc="T T T"'


def crystal(seed: int, name: str = "s"):
    atoms = bulk(["Cu", "Al", "Ni"][seed % 3], "fcc", a=3.6 + 0.01 * seed, cubic=bool(seed % 2))
    atoms.rattle(0.05, seed=seed)
    atoms.info.update(id=f"{name}{seed}", energy_per_atom=float(seed))
    return atoms


def write(path, frames) -> str:
    ase.io.write(str(path), frames, format="extxyz")
    return str(path)


@pytest.fixture(scope="module")
def xyz(tmp_path_factory) -> str:
    return write(tmp_path_factory.mktemp("xyz") / "many.extxyz", [crystal(k) for k in range(11)])


def same_arrays(a, b) -> None:
    assert a.arrays.keys() == b.arrays.keys()
    for key in a.arrays:
        assert a.arrays[key].dtype == b.arrays[key].dtype, key
        np.testing.assert_array_equal(a.arrays[key], b.arrays[key], err_msg=key)


@pytest.mark.parametrize("text", ["", "\n\n", "garbage", "truncated"])
def test_chunks_find_the_frames_of_the_whole_text(tmp_path, monkeypatch, xyz, text):
    monkeypatch.setattr(stream, "BLOCK_CHARS", 97)  # frames straddle many blocks
    whole = open(xyz).read()
    extra = {"": "", "\n\n": "\n\n", "garbage": "two\nlines\n", "truncated": f"5\n{GOOD}\nCu 0 0 0\n"}[text]
    path = tmp_path / "x.extxyz"
    path.write_text(whole + extra)
    lines = (whole + extra).split("\n")
    spans, _ = scan_frames(lines)
    broken = [span.error for span in spans if span.error]
    chunks = list(stream.extxyz_chunks(str(path), 4))
    assert [count for *_, count in chunks] == [4, 4, 3 + len(broken)]
    texts = "\n".join(text for parts, _, _ in chunks for _, text in parts).split("\n")
    assert [span.error for span in scan_frames(texts)[0]] == [span.error for span in spans]
    assert len(spans) == 11 + len(broken)
    assert [first for parts, _, _ in chunks for first, _ in parts][0] == 0
    assert chunks[-1][1] is None


def test_empty_file_is_one_failed_entry(tmp_path):
    (tmp_path / "e.extxyz").write_text("\n \n")
    assert list(stream.extxyz_chunks(str(tmp_path / "e.extxyz"), 5)) == [([], (0, "empty file"), 1)]


@pytest.mark.parametrize("store", ["graph", "structure"])
@pytest.mark.parametrize("workers", [1, 2])
def test_sharded_build_equals_one_shard(tmp_path, xyz, store, workers):
    options = dict(cutoff=CUTOFF, targets=["energy_per_atom"], store=store)
    whole = contrast.load_dataset(xyz, cache_dir=tmp_path / "a", **options)
    sharded = contrast.load_dataset(xyz, cache_dir=tmp_path / "b", shard_size=3, workers=workers, **options)
    same_arrays(whole, sharded)
    assert sharded.ids == [f"s{k}" for k in range(11)] and sharded.formulas == whole.formulas
    assert os.listdir(tmp_path / "b") == [os.path.basename(sharded.cache_path)]  # shards cleaned up


class Interrupt(Exception):
    pass


def test_interrupted_build_resumes_to_the_same_arrays(tmp_path, xyz):
    spec = resolve_source(xyz)
    settings = BuildSettings(CUTOFF, ("energy_per_atom",), store="graph")
    folder = tmp_path / "cache" / "entry"

    def stop_after_two(number):
        if number == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        shards.build_store(spec, folder, settings, xyz, workers=1, shard_size=3, on_shard=stop_after_two)
    work = tmp_path / "cache" / ".entry.shards"
    assert sorted(p.name for p in work.iterdir() if p.name.startswith("shard")) == [
        "shard-000000",
        "shard-000001",
    ]
    assert not folder.exists()
    shutil.rmtree(work / "shard-000001")  # as if killed while writing it
    built = []
    shards.build_store(spec, folder, settings, xyz, workers=1, shard_size=3, on_shard=built.append)
    assert built == [1, 2, 3]  # shard 0 was kept, the rest rebuilt
    resumed = contrast.CrystalDataset(contrast_store(folder), json.loads((folder / "meta.json").read_text()))
    fresh = contrast.load_dataset(
        xyz, cutoff=CUTOFF, targets=["energy_per_atom"], cache_dir=tmp_path / "fresh"
    )
    same_arrays(resumed, fresh)
    assert not work.exists()


def contrast_store(folder):
    from contrast.data.store.arrays import load_store

    return load_store(str(folder))


def test_shards_of_another_size_are_not_reused(tmp_path, xyz):
    spec, settings = resolve_source(xyz), BuildSettings(CUTOFF, store="structure")
    folder = tmp_path / "entry"
    with pytest.raises(Interrupt):
        shards.build_store(spec, folder, settings, xyz, workers=1, shard_size=3, on_shard=_raise)
    built = []
    shards.build_store(spec, folder, settings, xyz, workers=1, shard_size=4, on_shard=built.append)
    assert built == [0, 1, 2]


def _raise(number):
    raise Interrupt


def test_files_folder_glob_and_list_are_one_dataset(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    first = write(folder / "a.extxyz", [crystal(k, "a") for k in range(3)])
    second = write(folder / "b.extxyz", [crystal(k, "b") for k in range(2)])
    ase.io.write(folder / "c.vasp", crystal(7), format="vasp")
    expected = ["a0", "a1", "a2", "b0", "b1", "c"]
    for source in (
        str(folder),
        [first, second, str(folder / "c.vasp")],
        OmegaConf.create([str(folder / "*")]),
    ):
        ds = contrast.load_dataset(
            source, cutoff=CUTOFF, cache_dir=tmp_path / "c", shard_size=2, store="structure"
        )
        assert ds.ids == expected and len(ds) == 6
    limited = contrast.load_dataset(
        [first, second], cutoff=CUTOFF, cache_dir=tmp_path / "c", max_structures=4
    )
    assert limited.ids == ["a0", "a1", "a2", "b0"]
    twice = contrast.load_dataset([first, first], cutoff=CUTOFF, cache_dir=tmp_path / "c", shard_size=2)
    assert len(set(twice.ids)) == 6 and twice.ids[0].startswith("a0@") and twice.ids[3] == twice.ids[0] + "~2"
    with pytest.raises(ValueError, match="a list of sources"):
        contrast.load_dataset([first, "default"], cache_dir=tmp_path / "c")


def test_bad_entries_are_counted_across_shards(tmp_path):
    close = f"2\n{GOOD} id=close\nCu 0 0 0\nCu 0.2 0 0"
    nan = f"2\n{GOOD} id=nan\nCu 0 0 0\nCu nan 0 0"
    good = [crystal(k) for k in range(5)]
    path = tmp_path / "bad.extxyz"
    write(path, good[:2])
    text = path.read_text() + close + "\n"
    write(path, good[2:])
    path.write_text(text + path.read_text() + nan + "\n")  # bad entries 2 and 6, in shards 0 and 2 of size 3
    with pytest.raises(StructureError, match=r"bad\.extxyz, entry 2 \(close\): .*closer than 0.5"):
        contrast.load_dataset(str(path), cache_dir=tmp_path / "c", shard_size=3, workers=2, store="structure")
    ds = contrast.load_dataset(
        str(path),
        cache_dir=tmp_path / "c",
        shard_size=3,
        workers=2,
        on_error="skip",
        report_dir=tmp_path / "run",
    )
    assert ds.ids == [f"s{k}" for k in range(5)]
    assert [reason for _, reason in ds.skipped][0].startswith("atoms") and "NaN" in ds.skipped[1][1]
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert (report["read"], report["kept"], report["skipped"]) == (7, 5, 2)
    assert [e["entry"] for e in report["entries"]] == ["2 (close)", "6 (nan)"]
    with pytest.raises(StructureError, match="all 2 entries are bad"):
        (tmp_path / "all_bad.extxyz").write_text(close + "\n" + nan + "\n")
        contrast.load_dataset(
            str(tmp_path / "all_bad.extxyz"), cache_dir=tmp_path / "c", shard_size=1, on_error="skip"
        )
    assert not [p for p in os.listdir(tmp_path / "c") if p.endswith(".shards")]


def _die(*args):
    os._exit(1)  # a shard worker killed from outside (out of memory, a signal)


def test_a_dead_shard_worker_is_an_error_not_a_hang_and_the_build_resumes(tmp_path, xyz, monkeypatch):
    options = dict(cutoff=CUTOFF, targets=["energy_per_atom"], cache_dir=tmp_path / "b")
    options.update(shard_size=3, workers=2)
    with monkeypatch.context() as patch:
        patch.setattr(shards, "_build_job", _die)
        with pytest.raises(RuntimeError, match="died before finishing"):
            contrast.load_dataset(xyz, **options)
    resumed = contrast.load_dataset(xyz, **options)
    whole = contrast.load_dataset(xyz, cutoff=CUTOFF, targets=["energy_per_atom"], cache_dir=tmp_path / "a")
    same_arrays(whole, resumed)
