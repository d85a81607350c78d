"""One cutoff per run: data.cutoff drives the encoder, probe and energy runs inherit the checkpoint's."""

from __future__ import annotations

import pytest
import torch
from ase.build import bulk
from omegaconf import OmegaConf

import contrast
from contrast.nn.schnet import SchNet

TINY = ["experiment=smoke", "logger=none", "trainer.max_epochs=1", "encoder=schnet"]


@pytest.fixture(scope="module")
def checkpoint_at_4(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("pretrain-4")
    contrast.run_training([*TINY, "data.cutoff=4.0"], run_dir=run_dir)
    return run_dir / "checkpoints" / "last.ckpt"


def _graph_cutoff(run_dir) -> float:
    return float(OmegaConf.load(run_dir / "config.yaml").data.cutoff)


@pytest.mark.slow
def test_data_cutoff_drives_the_encoder(checkpoint_at_4):
    assert contrast.load_encoder(checkpoint_at_4).cutoff == 4.0
    assert _graph_cutoff(checkpoint_at_4.parent.parent) == 4.0


@pytest.mark.slow
def test_an_encoder_cutoff_other_than_the_graphs_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"data.cutoff=5.0 Å but the encoder uses a cutoff of 3.0 Å"):
        contrast.run_training([*TINY, "encoder.cutoff=3.0"], run_dir=tmp_path / "run")


@pytest.mark.slow
def test_probe_and_energy_runs_inherit_the_checkpoints_cutoff(tmp_path, checkpoint_at_4):
    for task in ("probe", "energy"):
        run_dir = tmp_path / task
        contrast.run_training(
            [*TINY, f"task={task}", f"task.checkpoint={checkpoint_at_4}", "data=emt", "data.targets=[energy]"]
            if task == "probe"
            else [*TINY, "task=energy", f"task.checkpoint={checkpoint_at_4}", "data.max_structures=24"],
            run_dir=run_dir,
        )
        assert _graph_cutoff(run_dir) == 4.0
        assert contrast.load_encoder(run_dir / "checkpoints" / "last.ckpt").cutoff == 4.0


@pytest.mark.slow
def test_a_probe_asking_for_another_cutoff_is_an_error(tmp_path, checkpoint_at_4):
    overrides = [
        *TINY,
        "task=probe",
        f"task.checkpoint={checkpoint_at_4}",
        "data=emt",
        "data.targets=[energy]",
    ]
    with pytest.raises(ValueError, match=r"data.cutoff=5.0 Å but the checkpoint .* uses a cutoff of 4.0 Å"):
        contrast.run_training([*overrides, "data.cutoff=5.0"], run_dir=tmp_path / "probe")


def test_embed_refuses_graphs_built_at_another_cutoff():
    encoder = SchNet(hidden_dim=8, num_layers=1, cutoff=4.0)
    crystals = [bulk("Cu", "fcc", a=3.6), bulk("NaCl", "rocksalt", a=5.6)]
    matching = [contrast.structure_to_graph(c, cutoff=4.0) for c in crystals]
    torch.testing.assert_close(contrast.embed(encoder, matching), contrast.embed(encoder, crystals))
    for cutoff in (3.0, 5.0):
        graphs = [contrast.structure_to_graph(c, cutoff=cutoff) for c in crystals]
        with pytest.raises(ValueError, match="graph 0 has .* edges, but .* at the encoder's cutoff of 4.0"):
            contrast.embed(encoder, graphs)


@pytest.mark.slow
def test_a_null_data_cutoff_takes_the_encoders_for_graphs_and_views(tmp_path):
    run_dir = tmp_path / "run"
    contrast.run_training([*TINY, "data.cutoff=null", "encoder.cutoff=4.5"], run_dir=run_dir)
    assert _graph_cutoff(run_dir) == 4.5
    assert contrast.load_encoder(run_dir / "checkpoints" / "last.ckpt").cutoff == 4.5
