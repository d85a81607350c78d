"""Safe checkpoint loading: malicious pickles are refused, allow-listed configs round-trip."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from contrast.pretrained.checkpoint import (
    CheckpointError,
    build_from_config,
    extract_state_dict,
    load_module,
    read_checkpoint,
)

HERE = f"{__name__}."  # lets the tests allow-list their own module instead of contrast.nn


class TinyNet(nn.Module):
    def __init__(self, hidden_dim: int, inner: nn.Module | None = None):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.lin = nn.Linear(3, hidden_dim)
        self.inner = inner if inner is not None else nn.Identity()


class _WriteMarker:
    """Unpickling this calls ``Path.write_text`` on a marker file: the code-execution attack."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


class _SystemCall:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", [_WriteMarker, _SystemCall])
@pytest.mark.parametrize("where", ["state_dict", "hyper_parameters"])
def test_malicious_checkpoint_is_refused_and_never_runs(tmp_path, payload, where):
    marker = tmp_path / "marker.txt"
    checkpoint = {"state_dict": {"encoder.w": torch.zeros(2)}, "hyper_parameters": {"task": "contrastive"}}
    checkpoint[where] = payload(marker)
    path = tmp_path / "evil.ckpt"
    torch.save(checkpoint, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "refused" in message
    assert not marker.exists()


def test_plain_pickle_with_payload_is_refused(tmp_path):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "raw.ckpt"
    with open(path, "wb") as handle:
        pickle.dump({"state_dict": _WriteMarker(marker), "hyper_parameters": {}}, handle)
    with pytest.raises(CheckpointError, match="refused"):
        read_checkpoint(path)
    assert not marker.exists()


def test_unreadable_files_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        read_checkpoint(tmp_path / "missing.ckpt")
    text = tmp_path / "notes.ckpt"
    text.write_text("this is not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint") as info:
        read_checkpoint(text)
    assert str(text) in str(info.value)
    listed = tmp_path / "list.ckpt"
    torch.save([1, 2, 3], listed)
    with pytest.raises(CheckpointError, match="expected a dict"):
        read_checkpoint(listed)
    partial = tmp_path / "partial.ckpt"
    torch.save({"state_dict": {}}, partial)
    with pytest.raises(CheckpointError, match="hyper_parameters"):
        read_checkpoint(partial)


def test_round_trip_with_nested_targets(tmp_path):
    torch.manual_seed(0)
    config = {
        "_target_": f"{__name__}.TinyNet",
        "hidden_dim": 4,
        "inner": {"_target_": f"{__name__}.TinyNet", "hidden_dim": 2},
    }
    net = build_from_config(config, allowed_prefixes=(HERE,))
    assert isinstance(net.inner, TinyNet) and net.inner.hidden_dim == 2
    state = {f"model.encoder.{key}": value for key, value in net.state_dict().items()}
    state["model.head.bias"] = torch.ones(1)
    path = tmp_path / "ok.ckpt"
    torch.save(
        {"state_dict": state, "hyper_parameters": {"task": "energy", "encoder": config}, "epoch": 3}, path
    )

    checkpoint = read_checkpoint(path)
    assert checkpoint["epoch"] == 3 and checkpoint["hyper_parameters"]["encoder"] == config
    weights = extract_state_dict(checkpoint["state_dict"], "model.encoder")
    assert set(weights) == set(net.state_dict())
    rebuilt = build_from_config(checkpoint["hyper_parameters"]["encoder"], allowed_prefixes=(HERE,))
    rebuilt.load_state_dict(weights)
    for key, value in net.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value)


def test_targets_outside_the_allow_list_are_refused():
    for target in ["os.system", "builtins.eval", "subprocess.Popen", "torch.nn.Linear"]:
        with pytest.raises(CheckpointError, match="outside the allowed"):
            build_from_config({"_target_": target, "_args_": ["echo"]})
    # Prefix tricks: names re-exported into contrast.nn modules are not contrast classes.
    for target in ["contrast.nn.geometry.torch", "contrast.nn.geometry.Tensor", "contrast.nn.base.scatter"]:
        with pytest.raises(CheckpointError, match="not a class or function defined"):
            build_from_config({"_target_": target})
    with pytest.raises(CheckpointError, match="not a dotted"):
        build_from_config({"_target_": "contrast.nn.base.CrystalEncoder; import os"})
    with pytest.raises(CheckpointError, match="private"):
        build_from_config({"_target_": "contrast.nn.base._hidden"})
    nested = {"encoder": {"_target_": "contrast.nn.base.CrystalEncoder", "act": {"_target_": "os.getcwd"}}}
    with pytest.raises(CheckpointError, match="os.getcwd"):
        build_from_config(nested)


def test_allowed_contrast_target_builds_and_plain_dicts_pass_through():
    from contrast.nn.base import CrystalEncoder, mean_readout

    built = build_from_config({"a": [1, {"_target_": "contrast.nn.base.CrystalEncoder"}], "b": {"c": 2}})
    assert isinstance(built["a"][1], CrystalEncoder) and built["b"] == {"c": 2}
    partial = build_from_config({"_target_": "contrast.nn.base.mean_readout", "_partial_": True})
    assert partial.func is mean_readout


def test_extract_state_dict_errors_and_compile_prefix():
    state = {"encoder._orig_mod.w": torch.ones(1), "projector.w": torch.zeros(1)}
    assert set(extract_state_dict(state, "encoder.")) == {"w"}
    with pytest.raises(CheckpointError, match="projector"):
        extract_state_dict(state, "model.encoder.")


def test_load_module_picks_the_present_prefix(tmp_path):
    config = {"_target_": "contrast.nn.base.CrystalEncoder"}
    checkpoint = {"state_dict": {"model.encoder.x": torch.ones(1)}, "hyper_parameters": {"encoder": config}}
    with pytest.raises(CheckpointError, match="do not fit"):
        load_module(checkpoint, "encoder", ["encoder.", "model.encoder."])
    with pytest.raises(CheckpointError, match="no 'head'"):
        load_module(checkpoint, "head", ["head."])


def test_real_encoder_round_trip(tmp_path):
    schnet = pytest.importorskip("contrast.nn.schnet")
    torch.manual_seed(1)
    config = {"_target_": "contrast.nn.schnet.SchNet", "hidden_dim": 8, "num_layers": 1, "cutoff": 3.0}
    encoder = build_from_config(config)
    assert isinstance(encoder, schnet.SchNet)
    state = {f"encoder.{key}": value for key, value in encoder.state_dict().items()}
    path = tmp_path / "schnet.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": {"encoder": config}}, path)
    loaded = load_module(read_checkpoint(path), "encoder", ["encoder.", "model.encoder."])
    for key, value in encoder.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert not loaded.training


def test_reads_a_real_lightning_checkpoint(tmp_path):
    import pytorch_lightning as pl

    class Module(pl.LightningModule):
        def __init__(self, encoder: dict, optimizer: dict):
            super().__init__()
            self.save_hyperparameters()
            self.encoder = build_from_config(encoder, allowed_prefixes=(HERE,))

        def training_step(self, batch, batch_idx):
            return self.encoder.lin(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    config = {"_target_": f"{__name__}.TinyNet", "hidden_dim": 3}
    module = Module(config, {"_target_": "torch.optim.SGD", "lr": 0.1})
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(4, 3)), batch_size=2)
    trainer = pl.Trainer(
        max_steps=2,
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, data)
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = read_checkpoint(path)
    assert checkpoint["hyper_parameters"]["encoder"] == config
    encoder = load_module(checkpoint, "encoder", ["encoder."], allowed_prefixes=(HERE,))
    assert torch.equal(encoder.lin.weight, module.encoder.lin.weight.detach())


def test_load_energy_model_round_trip(tmp_path):
    pytest.importorskip("contrast.nn.schnet")
    heads = pytest.importorskip("contrast.nn.heads")
    from contrast.graph.convert import structure_to_graph
    from contrast.pretrained.checkpoint import energy_model_from_checkpoint

    torch.manual_seed(2)
    config = {"_target_": "contrast.nn.schnet.SchNet", "hidden_dim": 8, "num_layers": 1, "cutoff": 3.0}
    model = heads.EnergyModel(build_from_config(config), heads.EnergyHead(8, hidden_dim=4, max_z=20))
    model.head.ref.fill_(-1.5)  # buffers must travel too
    state = {f"model.{key}": value for key, value in model.state_dict().items()}
    hparams = {"task": "energy", "encoder": config, "head": {"hidden_dim": 4, "max_z": 20}}
    path = tmp_path / "energy.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": hparams}, path)
    loaded = energy_model_from_checkpoint(read_checkpoint(path), source=path)
    from ase.build import bulk

    graph = structure_to_graph(bulk("Si", "diamond", a=5.43), cutoff=3.0)
    assert torch.equal(loaded(graph), model.eval()(graph))
    torch.save({"state_dict": {"encoder.x": torch.ones(1)}, "hyper_parameters": hparams}, path)
    with pytest.raises(CheckpointError, match="not an energy-task checkpoint"):
        energy_model_from_checkpoint(read_checkpoint(path), source=path)
