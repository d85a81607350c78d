"""The scale benchmark's functions at a tiny size: synthetic files, stores, view loaders and the JSON keys."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "scale.py"
KEYS = (
    "structure_store_bytes_per_atom",
    "edge_store_bytes_per_atom",
    "build_structures_per_s_per_process",
    "graph_build_structures_per_s_per_process",
    "peak_build_rss_mb",
    "worker_extra_rss_mb",
    "view_throughput_ratio",
    "machine",
    "date",
    "n",
    "shard_size",
    "phase_seconds",
    "goals",
)


@pytest.fixture(scope="module")
def scale(benchmark_script):
    module = benchmark_script("scale")
    return module


def test_perturbed_frames_read_back(scale, tmp_path):
    seeds = scale.load_seeds(scale.BUNDLED_SEED)
    assert (np.diff(seeds["ptr"]) >= 5).all() and (np.diff(seeds["ptr"]) <= 50).all()
    out = scale.generate(scale.BUNDLED_SEED, tmp_path, n=30, file_size=20, workers=1)
    assert len(out["files"]) == 2

    from contrast.data.io.readers import read_entries, resolve_source

    entries = read_entries(resolve_source(str(tmp_path)))
    assert len(entries) == 30 and all(e.error is None for e in entries)
    assert [e.id for e in entries] == [f"syn-{k:08d}" for k in range(30)]
    assert sum(len(e.structure.z) for e in entries) == out["atoms_written"]


def test_tiny_run_writes_every_key(scale, tmp_path):
    out = tmp_path / "run"
    path = tmp_path / "scale.json"
    sizes = "--n 120 --shard-size 60 --rss-small 60 --graph-sample 40 --workers 1 --no-train --inline"
    loader = "--batch-size 4 --loader-batches 2 --loader-warmup 1 --rounds 1 --rss-batches 2"
    paths = ["--seed-data", str(tmp_path / "absent.extxyz.gz"), "--out", str(out), "--json", str(path)]
    argv = [*sizes.split(), *loader.split(), *paths]
    scale.main(argv)
    result = json.loads(path.read_text())
    for key in KEYS:
        assert key in result, key
    assert 0 < result["structure_store_bytes_per_atom"] < result["edge_store_bytes_per_atom"]
    assert result["build_structures_per_s_per_process"] > 0
    assert result["graph_build_structures_per_s_per_process"] > 0
    assert set(result["peak_build_rss_mb"]) == {"60", "120"}
    assert all(v["max_single_mb"] > 0 for v in result["peak_build_rss_mb"].values())
    assert 0 < result["worker_extra_rss_mb"] < 2048
    assert result["view_throughput_ratio"] > 0
    assert set(result["goals"]) == set(scale.GOALS)
    assert not (out / "data").exists() and not (out / "cache").exists()  # removed unless --keep
