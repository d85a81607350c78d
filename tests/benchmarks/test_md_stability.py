"""benchmarks/md_stability.py: a hot NVT run of a tiny trained potential, and its g(r) checked on a crystal
whose neighbour shells are known."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from contrast.train import run_training


@pytest.fixture(scope="module")
def script(benchmark_script):
    return benchmark_script("md_stability")


def test_rdf_peaks_at_the_fcc_neighbour_shells(script):
    a = 3.6
    crystal = bulk("Cu", "fcc", a=a, cubic=True) * (3, 3, 3)
    r, g = script.rdf([crystal], r_max=4.0, bins=400)
    peaks = r[g > 0]
    np.testing.assert_allclose(sorted({round(p, 1) for p in peaks}), [round(a / np.sqrt(2), 1), a], atol=0.02)
    # 12 first neighbours per atom: the integral of 4 pi r^2 rho g(r) over the first shell
    rho = len(crystal) / crystal.get_volume()
    dr = r[1] - r[0]
    first = (r > 2.0) & (r < 3.0)
    assert float((4 * np.pi * r[first] ** 2 * rho * g[first] * dr).sum()) == pytest.approx(12.0, rel=1e-3)
    assert script.rdf_distance(g, g, r) == pytest.approx(0.0)


@pytest.mark.slow
def test_a_short_hot_run_of_a_tiny_potential(script, tmp_path):
    frames = []
    for k in range(16):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 1, 1)
        atoms.rattle(0.05, seed=k)
        atoms.info["group"] = "md"
        atoms.calc = EMT()
        atoms.get_potential_energy()
        frames.append(atoms)
    data = tmp_path / "cu.extxyz"
    ase.io.write(data, frames, format="extxyz")
    run_dir = tmp_path / "run"
    run_training(
        [
            "experiment=smoke",
            "task=energy",
            "logger=none",
            f"data.path={data}",
            "data.targets=null",
            "trainer.max_epochs=2",
            "data.max_structures=null",
        ],
        run_dir=run_dir,
    )
    out = tmp_path / "md.json"
    result = script.main(
        [
            "--checkpoint",
            str(run_dir / "checkpoints" / "last.ckpt"),
            "--data",
            str(data),
            "--steps",
            "20",
            "--every",
            "5",
            "--json",
            str(out),
            "--plot",
            str(tmp_path / "rdf.png"),
            "--group",
            "md",
        ]
    )
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["reference_frames"] == 16 and len(result) > 10
    assert 0.0 <= result["rdf_l1_distance"] <= 2.0 and result["shortest_distance_A"] > 0
    assert (tmp_path / "rdf.png").stat().st_size > 0
