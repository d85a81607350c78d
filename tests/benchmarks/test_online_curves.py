"""``benchmarks/online_curves.py``: several runs' online curves on one figure and table, next to fixed
encoders probed the way the runs were."""

from __future__ import annotations

import csv

import pytest

from tests.integration.test_online_probe import write_mp_stand_in

ENCODER = {"_target_": "contrast.nn.schnet.SchNet", "hidden_dim": 8, "num_layers": 1, "cutoff": 4.0}


def _run(folder, ratios: list[float]) -> None:
    folder.mkdir()
    with open(folder / "online_probe.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["online/mp_e_form_mae", "online/mp_e_form_ratio", "step", "wall_s"])
        for k, ratio in enumerate(ratios):
            writer.writerow([ratio / 10, ratio, 250 * (k + 1), 100.0 * (k + 1)])


def test_curves_table_gives_each_runs_last_and_best_values(benchmark_script, tmp_path):
    bench = benchmark_script("online_curves")
    _run(tmp_path / "a", [0.9, 0.7, 0.75])
    _run(tmp_path / "b", [0.8, 0.6])
    out = tmp_path / "out"
    bench.main(["--runs", f"long={tmp_path / 'a'}", f"short={tmp_path / 'b'}", "--tasks", "mp_e_form",
                "--out", str(out)])  # fmt: skip
    table = (out / "online_curves.md").read_text()
    assert "| long | 750 | 0.750 | 0.700 (500) |" in table
    assert "| short | 500 | 0.600 | 0.600 (500) |" in table
    assert (out / "online_curves.png").stat().st_size > 5_000
    with pytest.raises(SystemExit, match="no online_probe.csv"):
        bench.main(["--runs", f"x={tmp_path}", "--out", str(out)])


@pytest.mark.slow
def test_references_are_probed_like_a_run(benchmark_script, untrained_checkpoint, tmp_path):
    bench = benchmark_script("online_curves")
    data = tmp_path / "data"
    data.mkdir()
    write_mp_stand_in(data)
    checkpoint = tmp_path / "enc.ckpt"
    untrained_checkpoint(checkpoint, ENCODER, seed=2)
    with pytest.raises(SystemExit, match="name an encoder before"):
        bench.score_references(["fresh"], data, ["mp_e_form"], "mean", "last")
    scores = bench.score_references([str(checkpoint), "fresh"], data, ["mp_e_form"], "mean", "last")
    for name in (str(checkpoint), "fresh"):
        assert 0 < scores[name]["online/mp_e_form_ratio"] < 10
    # an untrained checkpoint and a fresh copy of it are two draws of the same architecture, not one
    assert scores[str(checkpoint)]["online/mp_e_form_mae"] != scores["fresh"]["online/mp_e_form_mae"]
