"""One broken frame, block or cut costs only itself: the reader re-synchronises at the next frame, a cut
compressed file keeps its complete frames, and a multi-block CIF is read block by block."""

from __future__ import annotations

import gzip
import json
import zlib

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

import contrast
from contrast.data.io import stream
from contrast.data.io.extxyz import scan_frames
from contrast.data.io.readers import CUT_REASON, read_file

N = 30


def frame(k: int, atoms: int = 2, declared: int | None = None) -> str:
    """Frame ``k``: a cubic Cu cell with ``atoms`` atom lines under a count line of ``declared``."""
    labels = f'id=f{k} energy={-k * 0.1:.3f} pbc="T T T"'
    header = f'Lattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3 {labels}'
    lines = [f"Cu {0.1 * k:.3f} 0 0", "Cu 1.5 1.5 0", "Cu 0 1.5 1.5", "Cu 1.5 0 1.5"][:atoms]
    return "\n".join([str(atoms if declared is None else declared), header, *lines]) + "\n"


def text_with(broken: dict[int, str]) -> str:
    return "".join(broken.get(k, frame(k)) for k in range(N))


CASES = {
    "count one too many": {10: frame(10, atoms=2, declared=3)},
    "count one too few": {10: frame(10, atoms=3, declared=2)},
    "junk between frames": {10: frame(10) + "junk\n-----\n"},
    "two broken": {3: frame(3, atoms=2, declared=4), 20: frame(20, atoms=4, declared=2)},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_broken_frame_costs_only_itself(tmp_path, case):
    broken = CASES[case]
    path = tmp_path / "frames.extxyz"
    path.write_text(text_with(broken))
    junk = case == "junk between frames"
    expected_kept = [f"f{k}" for k in range(N) if junk or k not in broken]
    ds = contrast.load_dataset(str(path), cutoff=3.0, on_error="skip", cache_dir=tmp_path / "c")
    assert ds.ids == expected_kept
    report = ds.report()
    assert report["read"] == N + (1 if junk else 0) and report["kept"] == len(expected_kept)
    assert report["skipped"] == len(broken) and all(entry["reason"] for entry in report["entries"])
    # the kept frames carry their own labels (no frame was shifted into another's lines)
    energies = contrast.load_dataset(
        str(path), cutoff=3.0, targets=["energy"], on_error="skip", cache_dir=tmp_path / "c"
    ).targets("energy")
    np.testing.assert_allclose(energies.ravel(), [-int(i[1:]) * 0.1 for i in expected_kept], atol=1e-9)


@pytest.mark.parametrize("case", sorted(CASES))
def test_streamed_chunks_find_the_same_entries_as_a_whole_read(tmp_path, monkeypatch, case):
    monkeypatch.setattr(stream, "BLOCK_CHARS", 61)  # frames and breaks straddle many blocks
    path = tmp_path / "frames.extxyz"
    path.write_text(text_with(CASES[case]))
    whole = read_file(str(path))
    streamed = [
        entry
        for parts, failure, _ in stream.extxyz_chunks(str(path), 7)
        for entry in stream.job_entries(stream.ShardJob(0, str(path), parts, failure))
    ]
    assert [(e.index, e.id, e.error) for e in streamed] == [(e.index, e.id, e.error) for e in whole]


def test_a_bad_frame_raises_naming_file_and_entry(tmp_path):
    path = tmp_path / "frames.extxyz"
    path.write_text(text_with(CASES["count one too many"]))
    with pytest.raises(contrast.StructureError, match=r"frames.extxyz, entry 10.*declares 3 atoms"):
        contrast.load_dataset(str(path), cutoff=3.0, cache_dir=tmp_path / "c")


def _complete_frames(text: str, prefix_length: int) -> int:
    """Frames of ``text`` whose every line, newline included, lies in its first ``prefix_length`` chars."""
    ends = np.cumsum([len(frame(k)) for k in range(N)])
    assert ends[-1] == len(text)
    return int((ends <= prefix_length).sum())


@pytest.mark.parametrize("fraction", [0.35, 0.8])
def test_a_cut_gzip_keeps_its_complete_frames_and_says_it_was_cut(tmp_path, monkeypatch, fraction):
    monkeypatch.setattr(stream, "BLOCK_CHARS", 500)
    text = text_with({})
    # flushed after every frame, as a writer that streams frames does (else a short file is one block)
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    packed = b"".join(packer.compress(frame(k).encode()) + packer.flush(zlib.Z_FULL_FLUSH) for k in range(N))
    packed += packer.flush()
    assert gzip.decompress(packed).decode() == text
    cut = tmp_path / "cut.extxyz.gz"
    cut.write_bytes(packed[: int(len(packed) * fraction)])
    prefix = zlib.decompressobj(wbits=31).decompress(cut.read_bytes()).decode()
    complete = _complete_frames(text, len(prefix))
    assert 0 < complete < N
    ds = contrast.load_dataset(
        str(cut), cutoff=3.0, on_error="skip", cache_dir=tmp_path / "c", report_dir=tmp_path
    )
    assert ds.ids == [f"f{k}" for k in range(complete)]
    report = json.loads((tmp_path / "data_report.json").read_text())
    assert report["cut_files"] == [str(cut)]
    assert report["entries"][-1]["reason"] == CUT_REASON
    # the whole-file reader (read_file) agrees
    entries = read_file(str(cut))
    assert [e.id for e in entries if e.error is None] == ds.ids and entries[-1].error == CUT_REASON
    with pytest.raises(contrast.StructureError, match="cut"):
        contrast.load_dataset(str(cut), cutoff=3.0, cache_dir=tmp_path / "c2")


def test_a_whole_gzip_is_not_cut_and_concatenated_members_read(tmp_path):
    text = text_with({})
    path = tmp_path / "two.extxyz.gz"
    half = len(frame(0)) * 12
    path.write_bytes(gzip.compress(text[:half].encode()) + gzip.compress(text[half:].encode()))
    assert [e.id for e in read_file(str(path))] == [f"f{k}" for k in range(N)]


def test_a_broken_cif_block_costs_only_itself(tmp_path):
    blocks = []
    for k, element in enumerate(["Cu", "Ni", "Al"]):
        structure = Structure(
            Lattice.cubic(3.6), [element] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
        )
        blocks.append(str(CifWriter(structure)).replace("data_", f"data_block{k}_", 1))
    broken = blocks[1].split("_atom_site_occupancy")[0] + "_atom_site_occupancy\n  Ni  Ni0  1  0.0  0.0\n"
    path = tmp_path / "many.cif"
    path.write_text(blocks[0] + broken + blocks[2])
    entries = read_file(str(path))
    assert [e.error is None for e in entries] == [True, False, True]
    ds = contrast.load_dataset(str(path), cutoff=3.0, on_error="skip", cache_dir=tmp_path / "c")
    assert len(ds) == 2 and ds.report()["skipped"] == 1
    assert sorted(ds.formulas) == ["Al", "Cu"]


def test_scan_finds_each_break_once():
    lines = text_with(CASES["two broken"]).split("\n")
    spans, stop = scan_frames(lines)
    assert len(spans) == N and stop == len(lines)
    assert [k for k, span in enumerate(spans) if span.error] == [3, 20]
