"""Every config group composes; the SLURM cluster config carries the launcher and requeue settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import OmegaConf

CONF = str(Path(__file__).resolve().parents[2] / "conf")


def _compose(*overrides: str, hydra_config: bool = False):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra_config)


@pytest.mark.parametrize("encoder", ["cgcnn", "schnet", "painn"])
@pytest.mark.parametrize("loss", ["infonce", "barlow", "vicreg"])
def test_groups_compose(encoder, loss):
    cfg = _compose(f"encoder={encoder}", f"loss={loss}")
    assert cfg.encoder._target_.startswith("contrast.nn.")
    assert cfg.loss._target_.startswith("contrast.losses")
    assert cfg.trainer.inference_mode is False


def test_slurm_cluster_config():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = _compose(
        "cluster=slurm", "hydra.launcher.nodes=4", "hydra.launcher.gpus_per_node=8", hydra_config=True
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher.nodes == 4 and launcher.gpus_per_node == 8
    assert launcher.tasks_per_node == 8  # one process per GPU, as Lightning's SLURM environment expects
    assert launcher.max_num_timeout > 0
    HydraConfig.instance().set_config(cfg)
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    assert trainer["strategy"] == "ddp" and trainer["devices"] == 8 and trainer["num_nodes"] == 4
    assert cfg.auto_resume is True
    plugin = instantiate(cfg.trainer.plugins[0])
    from lightning_fabric.plugins.environments import SLURMEnvironment

    assert isinstance(plugin, SLURMEnvironment) and plugin.auto_requeue
    assert int(plugin.requeue_signal) == 10  # SIGUSR1
