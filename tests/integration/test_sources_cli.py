"""``python -m contrast.train data.sources=[...]``: two files in one run, their draws in ``metrics.json``."""

from __future__ import annotations

import pytest
from ase.build import bulk
from ase.io import write

from tests.integration.cli import read_metrics, run_train


def write_source(path, elements: list[str], lattice: str, a: float, n: int) -> str:
    write(
        path, [bulk(elements[k % len(elements)], lattice, a=a + 0.02 * k) for k in range(n)], format="extxyz"
    )
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize("ranks", [1, 2])
def test_two_sources_report_their_draws(tmp_path, ranks):
    fcc = write_source(tmp_path / "fcc.extxyz", ["Cu", "Al", "Ni", "Ag"], "fcc", 3.6, 12)
    bcc = write_source(tmp_path / "bcc.extxyz", ["Fe", "W", "Mo", "Cr"], "bcc", 3.0, 24)
    run_dir = tmp_path / "run"
    ddp = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"] if ranks == 2 else []
    run_train(
        run_dir,
        tmp_path / "cache",
        f"data.sources=[{{path:'{fcc}',weight:3.0,name:metals}},{{path:'{bcc}'}}]",
        "data.fractions=[0.5,0.25,0.25]",
        "trainer.max_epochs=1",
        *ddp,
    )
    metrics = read_metrics(run_dir)
    sources = metrics["sources"]
    assert list(sources) == ["metals", "bcc"]
    assert [sources[name]["size"] for name in sources] == [12, 24]
    assert sources["metals"]["probability"] == pytest.approx(0.75)
    # One epoch draws as many structures as the sources have for training.
    assert sources["metals"]["drawn"] + sources["bcc"]["drawn"] == 6 + 12
    row = metrics["history"][0]
    assert row["data/source_fraction/metals"] == pytest.approx(sources["metals"]["drawn"] / 18)
    assert row["data/source_probability/bcc"] == pytest.approx(0.25)
