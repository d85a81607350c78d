"""The notebook API: load_encoder / embed / load_calculator on checkpoints, and refusal of unsafe files."""

from __future__ import annotations

import pickle

import pytest
import torch
from ase.build import bulk
from torch_geometric.data import Batch

import contrast
from contrast.pretrained.checkpoint import CheckpointError

ENCODER = {"_target_": "contrast.nn.schnet.SchNet", "hidden_dim": 8, "num_layers": 2, "cutoff": 4.0}


@pytest.fixture(scope="module")
def task_checkpoint(untrained_checkpoint, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "last.ckpt"
    module = untrained_checkpoint(path, ENCODER)
    return module, path


def _crystals():
    return [
        bulk("Cu", "fcc", a=3.6),
        bulk("Si", "diamond", a=5.43),
        bulk("NaCl", "rocksalt", a=5.6) * (1, 1, 2),
    ]


def test_embed_equals_the_training_embeddings(task_checkpoint):
    module, path = task_checkpoint
    encoder = contrast.load_encoder(path)
    assert not encoder.training and next(encoder.parameters()).device.type == "cpu"
    dataset = contrast.load_dataset(_crystals(), cutoff=4.0)
    with torch.no_grad():
        expected = module.encoder.eval().embed(
            Batch.from_data_list([dataset[i] for i in range(len(dataset))])
        )
    torch.testing.assert_close(contrast.embed(encoder, dataset, batch_size=2), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        contrast.embed(encoder, _crystals(), batch_size=1), expected, rtol=1e-5, atol=1e-6
    )
    assert contrast.embed(encoder, _crystals()).shape == (3, 8)


def test_embed_refuses_a_dataset_built_at_another_cutoff(task_checkpoint):
    _, path = task_checkpoint
    with pytest.raises(ValueError, match="cutoff"):
        contrast.embed(contrast.load_encoder(path), contrast.load_dataset(_crystals(), cutoff=5.0))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_loaders_refuse_a_checkpoint_that_would_run_code(tmp_path, task_checkpoint):
    module, _ = task_checkpoint
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as handle:
        pickle.dump({"state_dict": module.state_dict(), "hyper_parameters": {"x": _Payload(marker)}}, handle)
    for loader in (contrast.load_encoder, contrast.load_calculator):
        with pytest.raises(CheckpointError, match="evil.ckpt"):
            loader(path)
    assert not marker.exists()


def test_load_calculator_refuses_a_contrastive_checkpoint(task_checkpoint):
    _, path = task_checkpoint
    with pytest.raises(CheckpointError, match="energy"):
        contrast.load_calculator(path)


def test_importing_the_notebook_api_loads_neither_lightning_nor_hydra():
    import subprocess
    import sys

    code = (
        "import sys, contrast.pretrained; "
        "bad = [m for m in ('pytorch_lightning', 'lightning', 'hydra') if m in sys.modules]; "
        "assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_shipped_encoder_loads_by_name_in_a_fresh_process(
    ship_encoder_script, tmp_path, task_checkpoint, monkeypatch
):
    import json
    import subprocess
    import sys

    import contrast.pretrained.loading as pretrained

    _, path = task_checkpoint
    ship_module = ship_encoder_script
    models = tmp_path / "models"
    ship_module.ship(path, "tiny-test", {"data": "none", "recipe": "a test"}, out_dir=models)
    monkeypatch.setattr(pretrained, "MODELS_DIR", models)
    assert pretrained.pretrained_models()["tiny-test"]["recipe"] == "a test"
    expected = contrast.embed(contrast.load_encoder(path), _crystals())
    torch.testing.assert_close(contrast.embed(pretrained.load_encoder("tiny-test"), _crystals()), expected)
    with pytest.raises(FileNotFoundError, match="no shipped encoder of that name"):
        pretrained.load_encoder("no-such-model")
    # a fresh process loads the shipped file with weights_only and embeds the same
    code = (
        "import sys, json, torch, contrast, contrast.pretrained.loading as p; from pathlib import Path; "
        f"p.MODELS_DIR = Path({str(models)!r}); from ase.build import bulk; "
        "enc = contrast.load_encoder('tiny-test'); "
        "print(json.dumps(contrast.embed(enc, [bulk('Cu', 'fcc', a=3.6)]).tolist()))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    torch.testing.assert_close(torch.tensor(json.loads(result.stdout)), expected[:1])


def test_a_shipped_readout_is_the_one_loaded(ship_encoder_script, tmp_path, task_checkpoint, monkeypatch):
    """ship(pooling=..., readout_layers=...) changes the card's readout, not a weight."""

    import contrast.pretrained.loading as pretrained

    _, path = task_checkpoint
    ship_module = ship_encoder_script
    models = tmp_path / "models"
    card = {"data": "none", "recipe": "a test"}
    ship_module.ship(path, "tiny-all", card, out_dir=models, pooling="mean+max", readout_layers="all")
    monkeypatch.setattr(pretrained, "MODELS_DIR", models)
    assert pretrained.pretrained_models()["tiny-all"]["encoder"]["readout_layers"] == "all"
    shipped = pretrained.load_encoder("tiny-all")
    reference = contrast.load_encoder(path)
    reference.pooling, reference.readout_layers = "mean+max", "all"
    assert shipped.readout_layers == "all" and shipped.embedding_dim == reference.embedding_dim
    torch.testing.assert_close(contrast.embed(shipped, _crystals()), contrast.embed(reference, _crystals()))


def test_the_shipping_script_writes_where_load_encoder_reads(ship_encoder_script):
    from contrast.pretrained import loading

    assert ship_encoder_script.MODELS == loading.MODELS_DIR
    assert (ship_encoder_script.MODELS / "painn-mp-cpu-2400.json").exists()
