"""Embedding export (``python -m contrast.export`` / ``contrast embed``): files round-trip, rows equal
``contrast.embed``, shards concatenate to the whole, bad entries are skipped and listed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.io import write

import contrast
from contrast.embeddings.export import embed_file, parse_shard, resolve_device, shard_rows

REPO = Path(__file__).resolve().parents[2]
ENCODER = {"_target_": "contrast.nn.painn.PaiNN", "hidden_dim": 8, "num_layers": 2, "cutoff": 4.0}
METALS = [("Cu", 3.6), ("Al", 4.05), ("Ni", 3.52), ("Ag", 4.09), ("Au", 4.08), ("Pd", 3.89), ("Pt", 3.92)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from contrast.pretrained.checkpoint import build_from_config

    torch.manual_seed(0)
    encoder = build_from_config(ENCODER)
    path = tmp_path_factory.mktemp("ckpt") / "encoder.ckpt"
    state = {f"encoder.{name}": value for name, value in encoder.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": {"encoder": ENCODER}}, path)
    return path


def _good():
    frames = []
    for index, (symbol, a) in enumerate(METALS):
        atoms = bulk(symbol, "fcc", a=a) * (1, 1, 1 + index % 2)
        atoms.info.update(mp_id=f"x-{index}", band_gap=0.25 * index)
        frames.append(atoms)
    return frames


@pytest.fixture(scope="module")
def structures(tmp_path_factory):
    """Seven good crystals and, fourth in the file, one with overlapping atoms."""
    frames = _good()
    bad = bulk("Cu", "fcc", a=0.5)
    bad.info.update(mp_id="bad-1", band_gap=0.0)
    path = tmp_path_factory.mktemp("data") / "structures.extxyz"
    write(path, frames[:3] + [bad] + frames[3:])
    return path


def test_file_round_trips_and_rows_equal_embed(tmp_path, checkpoint, structures):
    out = tmp_path / "emb.npz"
    written = embed_file(checkpoint, structures, out, targets=["band_gap"], on_error="skip", device="cpu")
    rows = contrast.read_embeddings(out)
    good = _good()
    assert rows["ids"] == [atoms.info["mp_id"] for atoms in good] == written["ids"]
    assert rows["formulas"] == [atoms.get_chemical_formula(empirical=True) for atoms in good]
    expected = contrast.embed(contrast.load_encoder(checkpoint), good)
    assert rows["embeddings"].dtype == np.float32 and rows["embeddings"].shape == (7, 8)
    np.testing.assert_allclose(rows["embeddings"], expected.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(rows["labels"]["band_gap"], [a.info["band_gap"] for a in good])
    np.testing.assert_array_equal(rows["embeddings"], written["embeddings"])
    assert rows["meta"] == json.loads(json.dumps(written["meta"]))


def test_skipped_entries_are_listed(tmp_path, checkpoint, structures):
    rows = embed_file(checkpoint, structures, tmp_path / "emb.npz", on_error="skip", device="cpu")
    skipped = contrast.read_embeddings(tmp_path / "emb.npz")["meta"]["skipped"]
    assert [record["id"] for record in skipped] == ["bad-1"] == [r["id"] for r in rows["meta"]["skipped"]]
    assert skipped[0]["reason"] and skipped[0]["file"].endswith("structures.extxyz")
    with pytest.raises(contrast.StructureError, match="bad-1"):
        embed_file(checkpoint, structures, tmp_path / "raise.npz", device="cpu")
    assert not (tmp_path / "raise.npz").exists()


def test_shards_concatenate_to_the_whole(tmp_path, checkpoint, structures):
    kwargs = {"targets": ["band_gap"], "on_error": "skip", "device": "cpu", "batch_size": 2}
    whole = embed_file(checkpoint, structures, tmp_path / "all.npz", **kwargs)
    for index in range(3):
        embed_file(checkpoint, structures, tmp_path / f"part.{index}.npz", shard=f"{index}/3", **kwargs)
    parts = [contrast.read_embeddings(tmp_path / f"part.{index}.npz") for index in range(3)]
    assert [len(part["ids"]) for part in parts] == [2, 2, 3]
    assert [part["meta"]["rows"] for part in parts] == [[0, 2], [2, 4], [4, 7]]
    assert sum((part["ids"] for part in parts), []) == whole["ids"]
    np.testing.assert_array_equal(np.concatenate([p["embeddings"] for p in parts]), whole["embeddings"])
    joined = contrast.read_embeddings(str(tmp_path / "part.*.npz"))
    assert joined["ids"] == whole["ids"] and joined["formulas"] == whole["formulas"]
    np.testing.assert_array_equal(joined["embeddings"], whole["embeddings"])
    np.testing.assert_array_equal(joined["labels"]["band_gap"], whole["labels"]["band_gap"])
    with pytest.raises(ValueError, match=r"missing \[1\]"):
        contrast.read_embeddings([tmp_path / "part.0.npz", tmp_path / "part.2.npz"])


def test_shard_arithmetic():
    assert parse_shard("3/8") == (3, 8) and parse_shard(None) is None
    for bad in ("8/8", "1", "-1/2", "a/b"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)
    for total in (0, 1, 5, 17, 130):
        for batch_size in (1, 3, 64):
            bounds = [shard_rows(total, (i, 4), batch_size) for i in range(4)]
            assert bounds[0][0] == 0 and bounds[-1][1] == total
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            assert all(start % batch_size == 0 or start == total for start, _ in bounds)
    assert [shard_rows(130, (i, 2), 64) for i in range(2)] == [(0, 64), (64, 130)]
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_output_names_and_targets_are_checked_first(tmp_path, checkpoint, structures, monkeypatch):
    with pytest.raises(ValueError, match=r"out=.*emb\.csv: the file name must end in \.npz or \.parquet"):
        embed_file(checkpoint, structures, tmp_path / "emb.csv")
    with pytest.raises(ValueError, match="forces are per atom"):
        embed_file(checkpoint, structures, tmp_path / "emb.npz", targets=["forces"])
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ImportError, match=r"\.parquet needs the pyarrow package"):
        embed_file(checkpoint, structures, tmp_path / "emb.parquet")


def test_parquet_round_trips(tmp_path, checkpoint, structures):
    pytest.importorskip("pyarrow")
    kwargs = {"targets": ["band_gap"], "on_error": "skip", "device": "cpu"}
    written = embed_file(checkpoint, structures, tmp_path / "emb.parquet", **kwargs)
    rows = contrast.read_embeddings(tmp_path / "emb.parquet")
    assert rows["ids"] == written["ids"] and rows["formulas"] == written["formulas"]
    np.testing.assert_array_equal(rows["embeddings"], written["embeddings"])
    np.testing.assert_array_equal(rows["labels"]["band_gap"], written["labels"]["band_gap"])
    assert [r["id"] for r in rows["meta"]["skipped"]] == ["bad-1"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, CONTRAST_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.slow
def test_command_line(tmp_path, checkpoint, structures):
    out = tmp_path / "emb.1.npz"
    command = [sys.executable, "-m", "contrast", "embed", f"checkpoint={checkpoint}"]
    command += [f"data.path={structures}", f"out={out}", "data.on_error=skip", "data.targets=[band_gap]"]
    command += ["shard=1/2", "batch_size=2"]
    env = _env(tmp_path)
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "embedded 3 of 7 structures (shard 1/2: rows 4-6)" in result.stdout
    assert "skipped 1 bad entries" in result.stdout
    rows = contrast.read_embeddings(out)
    assert rows["ids"] == ["x-4", "x-5", "x-6"] and rows["meta"]["shard"] == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "emb.1.npz"]  # no Hydra outputs


def test_help_lists_the_commands_without_heavy_imports(tmp_path):
    code = (
        "import sys, runpy; sys.argv = ['contrast', '--help']\n"
        "try:\n    runpy.run_module('contrast', run_name='__main__')\nexcept SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "heavy = [m for m in ('torch', 'pytorch_lightning', 'hydra') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    for command in ("train", "evaluate", "embed"):
        assert f"\n  {command} " in result.stdout


def test_embed_stays_the_function_after_the_cli_module_is_imported(tmp_path):
    code = (
        "import contrast, contrast.export, contrast.__main__\n"
        "from ase.build import bulk\n"
        "from contrast.nn.schnet import SchNet\n"
        "assert callable(contrast.embed) and contrast.embed.__module__ == 'contrast.pretrained.loading'\n"
        "print(tuple(contrast.embed(SchNet(hidden_dim=8, num_layers=1), [bulk('Cu')]).shape))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "(1, 8)"
