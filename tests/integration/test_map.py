"""``python -m contrast map``: a standalone HTML map, drawn and hovered in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import ase.io
import numpy as np
import pytest
from ase.build import bulk

from contrast.embeddings.maps import majority_element, project, write_map
from tests.integration.cli import environment

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ENCODER = {"_target_": "contrast.nn.schnet.SchNet", "hidden_dim": 8, "num_layers": 1, "cutoff": 4.0}


def test_majority_element_and_pca_projection():
    assert (
        majority_element("Fe2O3") == "O"
        and majority_element("NaCl") == "Cl"
        and majority_element("Si") == "Si"
    )
    x = np.random.default_rng(0).normal(size=(10, 4)) * [5.0, 1.0, 0.1, 0.0]
    coords, method = project(x, "pca")
    assert method == "pca" and coords.shape == (10, 2)
    assert np.var(coords[:, 0]) >= np.var(coords[:, 1])


def test_an_unknown_colour_label_is_named():
    rows = {"ids": ["a"], "formulas": ["Si"], "embeddings": np.zeros((1, 2)), "labels": {"gap": np.ones(1)}}
    with pytest.raises(ValueError, match=r"color='energy'.*labels: \['gap'\], or 'element'"):
        write_map(rows, "unused.html", color="energy")


def _structures(path) -> list[str]:
    frames = []
    for k, (symbol, structure, a) in enumerate(
        [
            ("Cu", "fcc", 3.6),
            ("Ni", "fcc", 3.5),
            ("Al", "fcc", 4.05),
            ("NaCl", "rocksalt", 5.64),
            ("Si", "diamond", 5.43),
        ]
    ):
        atoms = bulk(symbol, structure, a=a)
        atoms.info["id"] = f"s{k}"
        atoms.info["band_gap"] = 0.5 * k
        frames.append(atoms)
    ase.io.write(path, frames, format="extxyz")
    return [f"s{k}" for k in range(len(frames))]


def _dom(page, fragment: str, tmp_path) -> str:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}",
        "--virtual-time-budget=2000",
        "--dump-dom",
        f"file://{page}#{fragment}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_map_command_draws_points_that_show_their_formula_on_hover(tmp_path, untrained_checkpoint):
    data, checkpoint, page = tmp_path / "five.extxyz", tmp_path / "enc.ckpt", tmp_path / "map.html"
    ids = _structures(data)
    untrained_checkpoint(checkpoint, ENCODER)
    env = environment(tmp_path / "cache")
    command = [
        sys.executable,
        "-m",
        "contrast",
        "map",
        f"checkpoint={checkpoint}",
        f"data.path={data}",
        "color=band_gap",
        f"out={page}",
    ]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mapped 5 structures" in result.stdout
    dom = _dom(page, "hover=s3", tmp_path)
    assert len(re.findall(r"<circle[^>]*class=\"point\"", dom)) == 5  # drawn by the page's script
    tip = re.search(r'<div id="tip"[^>]*style="([^"]*)"[^>]*>([^<]*)</div>', dom)
    assert tip and "display: block" in tip.group(1)
    assert "s3" in tip.group(2) and "NaCl" in tip.group(2) and "band_gap: 1.500" in tip.group(2)
    searched = _dom(page, "search=Cu", tmp_path)
    assert len(re.findall(r'class="point match"', searched)) == 1 and "1 of 5 match cu" in searched
    # the same map from an embedding file written by the export command
    embeddings = tmp_path / "emb.npz"
    export = [
        sys.executable,
        "-m",
        "contrast.export",
        f"checkpoint={checkpoint}",
        f"data.path={data}",
        "data.targets=[band_gap]",
        f"out={embeddings}",
    ]
    assert subprocess.run(export, cwd=tmp_path, env=env, capture_output=True, timeout=300).returncode == 0
    second = tmp_path / "from_file.html"
    command = [
        sys.executable,
        "-m",
        "contrast",
        "map",
        f"embeddings={embeddings}",
        "color=element",
        f"out={second}",
    ]
    assert subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, timeout=300).returncode == 0
    assert len(re.findall(r"<circle", _dom(second, "hover=s0", tmp_path))) == 5
    assert set(ids) <= set(re.findall(r'data-id="(s\d)"', _dom(second, "", tmp_path)))
    assert os.path.getsize(second) > 1000
