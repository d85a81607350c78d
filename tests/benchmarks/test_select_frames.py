"""benchmarks/select_frames.py: frames whose info matches are copied unchanged; a cut file is named."""

from __future__ import annotations

import gzip

import ase.io
import numpy as np
import pytest
from ase.build import bulk


def test_matching_frames_are_copied_unchanged(benchmark_script, tmp_path):
    frames = []
    for k in range(6):
        atoms = bulk("Si", "diamond", a=5.43) * (1, 1, 1 + k % 2)
        atoms.info.update(material_id=f"m-{k}", split="val" if k % 3 == 0 else "train")
        if k % 3 == 0:
            atoms.info["heat_ref"] = float(k)
        frames.append(atoms)
    source = tmp_path / "all.extxyz.gz"
    with gzip.open(source, "wt") as handle:
        ase.io.write(handle, frames[:2], format="extxyz")
        handle.write("\n")  # a blank line between frames is skipped, not read as the end
        ase.io.write(handle, frames[2:], format="extxyz")
    read, kept = benchmark_script("select_frames").select_frames(
        source, tmp_path / "train.extxyz.gz", {"split": "train"}
    )
    assert (read, kept) == (6, 4)
    with gzip.open(tmp_path / "train.extxyz.gz", "rt") as handle:
        selected = ase.io.read(handle, index=":", format="extxyz")
    expected = [a for a in frames if a.info["split"] == "train"]
    assert [a.info["material_id"] for a in selected] == [a.info["material_id"] for a in expected]
    for got, want in zip(selected, expected):
        np.testing.assert_allclose(got.positions, want.positions, atol=1e-8)
        assert "heat_ref" not in got.info


def test_a_file_cut_inside_a_frame_is_named(benchmark_script, tmp_path):
    source = tmp_path / "cut.extxyz"
    source.write_text('3\nLattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:3 split=train\nSi 0 0 0\n')
    with pytest.raises(ValueError, match=r"cut\.extxyz: frame 0: the file ends inside the frame"):
        benchmark_script("select_frames").select_frames(source, tmp_path / "out.extxyz", {"split": "train"})
    assert not list(tmp_path.glob("out.extxyz*"))  # nothing half-written is left under the output's name
