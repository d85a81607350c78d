"""Probe and energy tasks built directly, with their numbers checked against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from sklearn.linear_model import RidgeCV
from sklearn.metrics import mean_absolute_error
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch_geometric.data import Batch

import contrast
from contrast.data.datamodule import CrystalDataModule
from contrast.data.io.emt import emt_structures
from contrast.nn.forces import energy_forces_stress
from contrast.tasks.energy import EnergyTask
from contrast.tasks.probe import ProbeTask

CUTOFF = 4.0
ENCODER = {
    "_target_": "contrast.nn.schnet.SchNet",
    "hidden_dim": 16,
    "num_layers": 2,
    "num_rbf": 8,
    "cutoff": CUTOFF,
}
OPTIMIZER = {"_target_": "torch.optim.AdamW", "lr": 1e-3}


class _Metrics:
    def __init__(self):
        self.values = {}

    def add(self, key, value):
        self.values[key] = value


def _emt(tmp_path, targets, fractions=(0.8, 0.1, 0.1)) -> CrystalDataModule:
    return CrystalDataModule(
        source="emt", cutoff=CUTOFF, targets=targets, batch_size=16, fractions=fractions, cache_dir=tmp_path
    )


@pytest.mark.slow
def test_probe_report_equals_scikit_learn_on_the_same_features(quiet_trainer, tmp_path):
    pl.seed_everything(0)
    module = ProbeTask(encoder=ENCODER, targets=["energy"], optimizer=OPTIMIZER, head={"hidden_dim": 8})
    datamodule = _emt(tmp_path, ["energy"])
    trainer = quiet_trainer(1)
    trainer.fit(module, datamodule=datamodule)
    metrics = _Metrics()
    module.after_fit(trainer, datamodule, metrics, tmp_path)
    report = metrics.values

    train = [datamodule.train_set[i] for i in range(len(datamodule.train_set))]
    test = [datamodule.test_set[i] for i in range(len(datamodule.test_set))]
    assert report["probe_split"] == {"train": len(train), "test": len(test)} and len(test) > 0
    x_train, x_test = (contrast.embed(module.encoder, graphs).double().numpy() for graphs in (train, test))
    y_train = np.array([float(g.energy) for g in train])
    y_test = np.array([float(g.energy) for g in test])
    ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-6, 6, 25))).fit(x_train, y_train)
    expected = mean_absolute_error(y_test, ridge.predict(x_test))
    assert report["energy"]["pretrained"]["linear"]["mae"] == pytest.approx(expected, rel=1e-9)
    # every probe on every feature set, and the ratios computed from them
    for features in ("pretrained", "random_encoder", "fractions", "statistics"):
        for probe in ("linear", "knn", "mlp"):
            assert np.isfinite(report["energy"][features][probe]["mae"])
    ratios = report["energy"]["ratios"]["linear"]
    assert ratios["vs_random_encoder"] == pytest.approx(
        expected / report["energy"]["random_encoder"]["linear"]["mae"]
    )


@pytest.mark.slow
def test_probe_report_refuses_an_empty_test_split(quiet_trainer, tmp_path):
    module = ProbeTask(encoder=ENCODER, targets=["energy"], optimizer=OPTIMIZER, head={"hidden_dim": 8})
    datamodule = _emt(tmp_path, ["energy"], fractions=(0.9, 0.1, 0.0))
    with pytest.raises(ValueError, match="the test split is empty"):  # before any training
        quiet_trainer(1).fit(module, datamodule=datamodule)
    with pytest.raises(ValueError, match="the test split is empty"):
        module.after_fit(quiet_trainer(1), datamodule, _Metrics(), tmp_path)


def test_probe_classification_metrics_survive_a_class_missing_from_the_test_split():
    from contrast.evaluation.probes.report import REPORT_PROBES
    from contrast.evaluation.probes.run import run_probes

    rng = np.random.default_rng(0)
    x_train = rng.normal(size=(60, 4))
    y_train = np.repeat([0, 1, 2], 20)
    x_train[:, 0] += 3 * y_train
    x_test = rng.normal(size=(10, 4))
    y_test = np.repeat([0, 2], 5)  # class 1 is absent from the test split
    out = run_probes(x_train, y_train, x_test, y_test, "classification", probes=REPORT_PROBES)
    for probe in REPORT_PROBES:
        assert 0.0 <= out[probe]["accuracy"] <= 1.0


@pytest.mark.slow
def test_energy_head_learns_emt_energies_and_forces(quiet_trainer, tmp_path):
    """Trained on 96 EMT copper cells (strained, rattled, vacancies), scored on 12 held-out ones."""
    pl.seed_everything(0)
    datamodule = CrystalDataModule(
        source=emt_structures(120, elements=["Cu"]),
        cutoff=CUTOFF,
        targets=["energy", "forces"],
        batch_size=16,
        fractions=(0.8, 0.1, 0.1),
        cache_dir=tmp_path,
    )
    module = EnergyTask(
        encoder=ENCODER,
        optimizer={"_target_": "torch.optim.AdamW", "lr": 5e-3},
        head={"hidden_dim": 16},
        scheduler={"warmup_epochs": 1, "min_lr_ratio": 0.05},
        loss_weights={"energy": 100.0, "forces": 10.0},
    )
    quiet_trainer(10).fit(module, datamodule=datamodule)

    train = [datamodule.train_set[i] for i in range(len(datamodule.train_set))]
    test = [datamodule.test_set[i] for i in range(len(datamodule.test_set))]
    batch = Batch.from_data_list(test)
    out = energy_forces_stress(module.model.eval(), batch, compute_forces=True, training=False)
    atoms = torch.bincount(batch.batch).double()
    energy_error = ((out["energy"].detach().double() - batch.energy.double()) / atoms).abs().mean().item()
    force_error = (out["forces"].detach() - batch.forces).abs().mean().item()
    # baselines: the training mean energy per atom, and zero forces
    mean_per_atom = np.mean([float(g.energy) / len(g.z) for g in train])
    constant_error = np.mean([abs(float(g.energy) / len(g.z) - mean_per_atom) for g in test])
    zero_force_error = batch.forces.abs().mean().item()
    assert energy_error < 0.5 * constant_error, (energy_error, constant_error)
    assert energy_error < 0.03  # eV/atom
    assert force_error < 0.35 * zero_force_error, (force_error, zero_force_error)
    assert force_error < 0.1  # eV/Å
