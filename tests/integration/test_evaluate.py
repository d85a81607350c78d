"""The probe suite (``python -m contrast.evaluate``) on generated stand-ins of the suite's files."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import ase.io
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import contrast
from contrast.data.io.emt import emt_structures
from contrast.data.splits import composition_split
from contrast.evaluation.probes.report import probe_report
from contrast.evaluation.runner import evaluate
from contrast.evaluation.suite import SuiteData, parse_suite
from tests.integration.cli import REPO, environment

ENCODER = {"_target_": "contrast.nn.schnet.SchNet", "hidden_dim": 8, "num_layers": 1, "cutoff": 4.0}
N_STRUCTURES = 40
LABELLED = range(0, N_STRUCTURES, 2)  # the stand-in perov_5 file labels every other frame (split=val)


def _write(path, images) -> None:
    with gzip.open(path, "wt") as handle:
        ase.io.write(handle, images, format="extxyz")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One BLAS/OpenMP thread: the probes' many small fits only wait on each other's threads on a busy CPU."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Stand-ins of three suite files, named as the real ones: EMT structures with labels in ``info``."""
    folder = tmp_path_factory.mktemp("suite-data")
    structures = emt_structures(N_STRUCTURES, seed=3)
    for atoms in structures:
        atoms.info["e_form_per_atom"] = atoms.get_potential_energy() / len(atoms)
    _write(folder / "mp_train.extxyz.gz", structures)
    _write(folder / "mlearn_Si_train.extxyz.gz", structures)  # the calculator energy is the label
    perov = []
    for k, atoms in enumerate(emt_structures(N_STRUCTURES, seed=4)):
        atoms.info["split"] = "val" if k in LABELLED else "train"
        if k in LABELLED:
            atoms.info["heat_ref"] = float(len(atoms) + k)
        perov.append(atoms)
    _write(folder / "perov_5_trainval.extxyz.gz", perov)
    return folder


@pytest.fixture(scope="module")
def checkpoint(untrained_checkpoint, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "last.ckpt"
    untrained_checkpoint(path, ENCODER)
    return path


def _tiny_suite(data_dir, *overrides: str) -> dict:
    """``conf/suite/tiny.yaml`` as the CLI composes it."""
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            "evaluate", overrides=["checkpoint=x", "suite=tiny", f"suite.data_dir={data_dir}", *overrides]
        )
    return OmegaConf.to_container(cfg.suite, resolve=True)


@pytest.fixture(scope="module")
def run(data_dir, checkpoint, tmp_path_factory):
    """One run of the tiny suite, the MP stand-in's train part capped at 20 (a subsample)."""
    out = tmp_path_factory.mktemp("evaluate")
    suite = _tiny_suite(data_dir, "suite.tasks.mp_e_form.max_train=20")
    return evaluate(checkpoint, suite, out, cache_dir=tmp_path_factory.mktemp("cache")), out


def _split_ids(out, task: str) -> dict[str, list[str]]:
    return json.loads((out / "tasks" / task / "split.json").read_text())["ids"]


def test_outputs_are_written(run):
    results, out = run
    assert {"results.json", "results.md", "ratios.png"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "results.json").read_text()) == results
    assert list(results["tasks"]) == ["mp_e_form", "perov_5_heat", "mlearn_Si_energy"]
    assert results["encoder"]["name"] == "SchNet" and results["encoder"]["cutoff"] == 4.0
    markdown = (out / "results.md").read_text()
    for name in results["tasks"]:
        assert markdown.count(f"| {name} |") == 4  # ridge, kNN and MLP tables, and the wall times
    assert "pretrained / composition" in markdown and str(results["checkpoint"]) in markdown
    assert "## Wall time" in markdown
    assert (out / "tasks" / "mlearn_Si_energy" / "plots" / "linear_parity.png").exists()


def test_sizes_follow_the_splits_and_the_limits(run):
    results, _ = run
    mp, perov, mlearn = (results["tasks"][name]["sizes"] for name in results["tasks"])
    assert mp["labelled"] == N_STRUCTURES and mp["train"] == 20 < mp["parts"]["train"]
    assert mp["test"] == mp["parts"]["test"] > 0
    assert perov["labelled"] == len(LABELLED)
    assert (perov["parts"]["train"], perov["parts"]["val"], perov["parts"]["test"]) == (16, 0, 4)
    assert (mlearn["train"], mlearn["test"]) == (32, 8)
    assert results["tasks"]["perov_5_heat"]["report"]["probe_split"] == {"train": 16, "test": 4}


def test_ridge_mae_is_the_reports(run, checkpoint, data_dir):
    """The recorded ridge MAE is what probe_report gives on the recorded split."""
    results, out = run
    task = results["tasks"]["mlearn_Si_energy"]
    encoder = contrast.load_encoder(checkpoint)
    spec = parse_suite({"t": _tiny_suite(data_dir)["tasks"]["mlearn_Si_energy"]})
    graphs = SuiteData(spec, data_dir, encoder.cutoff).task_graphs(spec)
    assert [graphs.dataset.ids[p] for p in graphs.split["test"]] == _split_ids(out, "mlearn_Si_energy")[
        "test"
    ]
    report = probe_report(encoder, graphs.train, graphs.test, targets=["energy_per_atom"], seed=0)
    expected = report["energy_per_atom"]["pretrained"]["linear"]["mae"]
    assert task["report"]["energy_per_atom"]["pretrained"]["linear"]["mae"] == pytest.approx(
        expected, rel=1e-9
    )
    energies = np.array(
        [atoms.get_potential_energy() / len(atoms) for atoms in emt_structures(N_STRUCTURES, 3)]
    )
    labels = [float(graph.energy_per_atom) for graph in graphs.test]
    np.testing.assert_allclose(labels, energies[graphs.split["test"]], rtol=0, atol=1e-6)


def test_split_is_fixed_and_selects_labelled_frames(run, data_dir):
    """The split depends on the task alone (not the cutoff or the run); perov takes the val frames only."""
    _, out = run
    spec = parse_suite({"perov_5_heat": _tiny_suite(data_dir)["tasks"]["perov_5_heat"]})
    graphs = SuiteData(spec, data_dir, cutoff=3.0).task_graphs(spec)
    ids = graphs.dataset.ids
    assert {name: [ids[p] for p in graphs.split[name]] for name in ("train", "test")} == {
        name: _split_ids(out, "perov_5_heat")[name] for name in ("train", "test")
    }
    assert set(graphs.split["train"]) | set(graphs.split["test"]) == set(LABELLED)
    heat = [float(graph.heat_ref) for graph in graphs.train]
    assert heat == [float(len(graphs.dataset.atoms(p)) + p) for p in graphs.split["train"]]


def test_composition_split_keeps_formulas_apart(run, data_dir):
    _, out = run
    dataset = contrast.load_dataset(str(data_dir / "mp_train.extxyz.gz"), cutoff=4.0)
    formula = dict(zip(dataset.ids, dataset.formulas))
    ids = _split_ids(out, "mp_e_form")
    train, test = ({formula[i] for i in ids[name]} for name in ("train", "test"))
    assert train and test and not train & test
    whole = composition_split(dataset.formulas, (0.8, 0.1, 0.1), seed=0)  # the pretraining recipe's split
    assert {dataset.ids[i] for i in whole["test"]} == set(ids["test"])


def test_a_missing_file_is_named(data_dir, checkpoint, tmp_path):
    tasks = {
        "absent": {"file": "nowhere.extxyz.gz", "target": "energy"},
        "mlearn_Si_energy": _tiny_suite(data_dir)["tasks"]["mlearn_Si_energy"],
    }
    with pytest.raises(FileNotFoundError, match="absent .*nowhere.extxyz.gz.*skip_missing"):
        evaluate(checkpoint, {"data_dir": str(data_dir), "tasks": tasks}, tmp_path)


def test_bad_task_entries_are_named(data_dir):
    with pytest.raises(ValueError, match="task t: unknown key"):
        parse_suite({"t": {"file": "a.xyz", "target": "x", "max_tarin": 3}})
    with pytest.raises(ValueError, match="split kind"):
        parse_suite({"t": {"file": "a.xyz", "target": "x", "split": {"kind": "scaffold"}}})
    spec = parse_suite(
        {"t": {"file": "perov_5_trainval.extxyz.gz", "target": "heat_ref", "select": {"split": "train"}}}
    )
    with pytest.raises(ValueError, match=r"perov_5_trainval.extxyz.gz: frame 1 .*'heat_ref'"):
        SuiteData(spec, data_dir, cutoff=4.0).labels(spec[0])


@pytest.mark.slow
def test_cli_writes_the_outputs_and_lists_skipped_tasks(data_dir, checkpoint, tmp_path):
    """One task of the tiny suite through the CLI, plus a task whose file is missing (skipped and listed)."""
    run_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "contrast.evaluate", f"checkpoint={checkpoint}", "suite=tiny",
        f"suite.data_dir={data_dir}", "~suite.tasks.mp_e_form", "~suite.tasks.mlearn_Si_energy",
        "suite.tasks.perov_5_heat.max_test=3", "suite.skip_missing=true", f"hydra.run.dir={run_dir}",
        "+suite.tasks.absent={file: nowhere.extxyz.gz, target: energy}",
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=REPO, env=environment(tmp_path / "cache"), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "| perov_5_heat |" in result.stdout and "## Ridge" in result.stdout
    assert "absent (" in result.stdout  # listed as skipped
    results = json.loads((run_dir / "results.json").read_text())
    assert list(results["tasks"]) == ["perov_5_heat"] and results["skipped"][0]["task"] == "absent"
    assert results["tasks"]["perov_5_heat"]["sizes"]["test"] == 3
    assert (run_dir / "ratios.png").stat().st_size > 0 and (run_dir / "results.md").exists()


def test_scoring_validation_parts_never_reads_a_test_structure(run, data_dir, checkpoint, tmp_path):
    """scored=val: MP scores its split's val part; perov (no val part) a seeded eighth of its train part, the
    probes training on the rest. No structure of a test part is trained on or scored."""
    _, out = run
    suite = _tiny_suite(data_dir, "suite.tasks.mp_e_form.max_train=20")
    results = evaluate(checkpoint, suite, tmp_path / "val", scored="val", cache_dir=tmp_path / "cache")
    assert results["scored"] == "val"
    assert "## Ridge: val MAE" in (tmp_path / "val" / "results.md").read_text()
    for task in ("mp_e_form", "perov_5_heat"):
        test_ids = set(_split_ids(out, task)["test"])
        val_split = _split_ids(tmp_path / "val", task)
        assert val_split["val"] and not val_split["test"]
        assert not test_ids & (set(val_split["train"]) | set(val_split["val"]))
        assert not set(val_split["train"]) & set(val_split["val"])
    perov_train = set(_split_ids(out, "perov_5_heat")["train"])
    perov_val = _split_ids(tmp_path / "val", "perov_5_heat")
    assert set(perov_val["train"]) | set(perov_val["val"]) == perov_train
    assert len(perov_val["val"]) == max(1, len(perov_train) // 8)


def test_every_layer_readout_is_probed_for_both_encoders(data_dir, checkpoint, tmp_path):
    """layers=all: the embeddings are the pooled features of every layer, for the encoder and its fresh copy;
    the recorded MAE is probe_report's on an encoder read out that way, the caller's encoder is untouched."""
    suite = _tiny_suite(data_dir, "~suite.tasks.mp_e_form", "~suite.tasks.perov_5_heat")
    encoder = contrast.load_encoder(checkpoint)
    results = evaluate(encoder, suite, tmp_path / "all", layers="all", cache_dir=tmp_path / "cache")
    assert encoder.readout_layers == "last"
    assert results["encoder"]["readout_layers"] == "all" and results["encoder"]["embedding_dim"] == 8 * 2
    assert "pooling of every layer" in (tmp_path / "all" / "results.md").read_text()
    spec = parse_suite({"t": suite["tasks"]["mlearn_Si_energy"]})
    graphs = SuiteData(spec, data_dir, encoder.cutoff).task_graphs(spec)
    encoder.readout_layers = "all"
    report = probe_report(encoder, graphs.train, graphs.test, targets=["energy_per_atom"], seed=0)
    recorded = results["tasks"]["mlearn_Si_energy"]["report"]["energy_per_atom"]
    for start in ("pretrained", "random_encoder"):
        assert recorded[start]["linear"]["mae"] == pytest.approx(
            report["energy_per_atom"][start]["linear"]["mae"]
        )


def test_two_runs_side_by_side(run, data_dir, checkpoint, tmp_path, benchmark_script):
    results, out = run
    suite = _tiny_suite(data_dir, "suite.tasks.mp_e_form.max_train=20")
    evaluate(checkpoint, suite, tmp_path / "b", seed=1, cache_dir=tmp_path / "cache")
    runs = [f"ours={out / 'results.json'}", f"again={tmp_path / 'b' / 'results.json'}"]
    table = benchmark_script("compare_encoders").main([*runs, "--out", str(tmp_path / "t.md")])
    lines = table.splitlines()
    assert "| task | probe | ours | again | element fractions | element statistics |" in lines
    mae = results["tasks"]["mp_e_form"]["report"]["e_form_per_atom"]["pretrained"]["linear"]["mae"]
    row = next(line for line in lines if line.startswith("| mp_e_form") and "| Ridge |" in line)
    assert f"{mae:.4g}" in row.split("|")[3]
    assert (tmp_path / "t.md").read_text() == table
