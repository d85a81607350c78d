"""``benchmarks/profile_energy_step.py`` runs on a small file and prints the timing and the operator table."""

from __future__ import annotations

from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from contrast.data.io.emt import emt_structures


def test_profile_prints_step_time_and_operators(benchmark_script, tmp_path, capsys):
    frames = emt_structures(num_structures=4, seed=1, elements=["Cu"])
    for atoms in frames:
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
    path = tmp_path / "cu.extxyz"
    write(path, frames, format="extxyz")
    bench = benchmark_script("profile_energy_step")
    bench.main(["--data", str(path), "--first", "0", "--batch-size", "2", "--steps", "1", "--hidden-dim", "8",
                "--num-layers", "1", "--cutoff", "4.0"])  # fmt: skip
    out = capsys.readouterr().out
    assert "s per step;" in out and "edges" in out
    assert "aten::" in out  # the profiler's table
