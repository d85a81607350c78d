"""FinetuneTask: it learns, layer decay follows depth, freezing, EMA, resume, starting from a checkpoint."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from ase.build import bulk
from omegaconf import OmegaConf

import contrast
from contrast.data.datamodule import CrystalDataModule
from contrast.tasks.finetune import FinetuneTask
from contrast.tasks.finetune_report import predict

CUTOFF = 4.0
ENCODER = {
    "_target_": "contrast.nn.schnet.SchNet",
    "hidden_dim": 16,
    "num_layers": 2,
    "num_rbf": 8,
    "cutoff": CUTOFF,
    "max_z": 80,
}
OPTIMIZER = {"_target_": "torch.optim.AdamW", "lr": 5e-3, "weight_decay": 0.0}


def _alloys(n: int = 40, seed: int = 0) -> list:
    """Cu-Au FCC cells of 4 or 8 atoms labelled with the Au fraction (intensive) and Au count (extensive)."""
    rng = np.random.default_rng(seed)
    structures = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.8, cubic=True) * ((1, 1, 1) if k % 2 else (2, 1, 1))
        gold = rng.random(len(atoms)) < rng.uniform(0.0, 1.0)
        atoms.numbers[gold] = 79
        atoms.positions += rng.normal(scale=0.03, size=atoms.positions.shape)
        atoms.info.update(id=f"alloy-{k}", au_fraction=float(gold.mean()), au_count=float(gold.sum()))
        atoms.info["rich"] = int(gold.mean() > 0.5)
        structures.append(atoms)
    return structures


@pytest.fixture(scope="module")
def structures():
    return _alloys()


def _data(structures, targets, tmp_path=None) -> CrystalDataModule:
    return CrystalDataModule(
        structures,
        cutoff=CUTOFF,
        targets=targets,
        batch_size=8,
        fractions=(0.6, 0.2, 0.2),
        output_dir=None if tmp_path is None else str(tmp_path),
    )


def _task(targets=("au_fraction",), **options) -> FinetuneTask:
    torch.manual_seed(0)
    options = {"encoder": ENCODER, "head": {"hidden_dim": 16}, "optimizer": OPTIMIZER, **options}
    return FinetuneTask(targets=list(targets), **options)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in module.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(("target", "readout"), [("au_fraction", "mean"), ("au_count", "sum")])
def test_finetuning_beats_the_train_mean(quiet_trainer, structures, target, readout):
    data = _data(structures, [target])
    module = _task([target], readout=readout)
    trainer = quiet_trainer(12)
    trainer.fit(module, datamodule=data)
    (result,) = trainer.test(module, datamodule=data, verbose=False)
    train = np.array([float(getattr(data.train_set[i], target)) for i in range(len(data.train_set))])
    test = np.array([float(getattr(data.test_set[i], target)) for i in range(len(data.test_set))])
    mean_mae = np.abs(test - train.mean()).mean()
    pred = predict(module, [data.test_set[i] for i in range(len(data.test_set))]).numpy()[:, 0]
    mae = np.abs(pred - test).mean()
    assert mae == pytest.approx(result["test/mae"], rel=1e-4)  # the logged metric is the same number
    assert mae < 0.25 * mean_mae, (mae, mean_mae)


def test_every_layer_readout_feeds_the_head(quiet_trainer, structures):
    """With ``readout_layers=all`` the head reads the pooled features of every layer, and the task learns."""
    data = _data(structures, ["au_fraction"])
    module = _task(encoder={**ENCODER, "readout_layers": "all"})
    assert module.head.net[0].in_features == 16 * 3  # embedding + 2 layers
    trainer = quiet_trainer(12)
    trainer.fit(module, datamodule=data)
    test = np.array([float(data.test_set[i].au_fraction) for i in range(len(data.test_set))])
    train = np.array([float(data.train_set[i].au_fraction) for i in range(len(data.train_set))])
    pred = predict(module, [data.test_set[i] for i in range(len(data.test_set))]).numpy()[:, 0]
    assert np.abs(pred - test).mean() < 0.25 * np.abs(test - train.mean()).mean()


def test_sum_readout_is_extensive(structures):
    module = _task(["au_count"], readout="sum").eval()
    module.target_mean.fill_(0.3)
    module.target_std.fill_(2.0)
    dataset = contrast.load_dataset([structures[1], structures[1] * (2, 1, 1)], cutoff=CUTOFF)
    with torch.no_grad():
        single, double = (module(torch_geometric_batch([dataset[i]])) for i in range(2))
    torch.testing.assert_close(double, 2 * single, rtol=1e-4, atol=1e-5)


def torch_geometric_batch(graphs):
    from torch_geometric.data import Batch

    return Batch.from_data_list(graphs)


@pytest.mark.parametrize("name", ["cgcnn", "schnet", "painn"])
def test_layer_decay_follows_depth_for_every_encoder(name):
    target = {"cgcnn": "cgcnn.CGCNN", "schnet": "schnet.SchNet", "painn": "painn.PaiNN"}[name]
    encoder = {
        "_target_": f"contrast.nn.{target}",
        "hidden_dim": 8,
        "num_layers": 3,
        "num_rbf": 4,
        "max_z": 30,
    }
    lr, decay = 1e-3, 0.7
    module = FinetuneTask(
        encoder=encoder,
        targets=["y"],
        optimizer={"_target_": "torch.optim.AdamW", "lr": lr},
        layer_decay=decay,
    )
    module.set_encoder_frozen(True)  # frozen or not, every encoder parameter is in the optimiser
    groups = module.parameter_groups()
    rate = {id(p): group["lr"] for group in groups for p in group["params"]}
    assert len(rate) == sum(1 for _ in module.parameters())  # each parameter once
    assert {rate[id(p)] for p in module.head.parameters()} == {lr}
    per_block = []
    for modules in module.encoder.blocks():
        rates = {rate[id(p)] for m in modules for p in m.parameters()}
        assert len(rates) == 1, f"{name}: one rate per layer, got {rates}"
        per_block.append(rates.pop())
    from_head = [lr, *reversed(per_block)]  # head, last block, ..., embedding
    assert all(a >= b for a, b in zip(from_head, from_head[1:]))
    assert per_block == pytest.approx([lr * decay ** (len(per_block) - k) for k in range(len(per_block))])


class _Record(pl.Callback):
    """Encoder weights at fit start and after each epoch, the encoder's mode in each step, the optimiser."""

    def __init__(self):
        self.states, self.modes, self.optimizers = [], set(), set()

    def on_train_start(self, trainer, module):
        self.states.append(_state(module.trained_encoder))

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.modes.add((trainer.current_epoch, module.trained_encoder.training))
        self.optimizers.add(id(trainer.optimizers[0]))

    def on_train_epoch_end(self, trainer, module):
        self.states.append(_state(module.trained_encoder))


def test_freeze_epochs_keeps_the_encoder_for_the_first_epoch(quiet_trainer, structures):
    record = _Record()
    # weight decay too: a frozen parameter has no gradient, and the optimiser skips it
    module = _task(freeze_epochs=1, optimizer={**OPTIMIZER, "weight_decay": 0.1})
    head_before = _state(module.head)
    quiet_trainer(2, [record]).fit(module, datamodule=_data(structures, ["au_fraction"]))
    start, after_first, after_second = record.states
    assert _same(start, after_first)  # epoch 0: not one encoder weight (or buffer) moved
    assert not _same(after_first, after_second)  # epoch 1: the same optimiser now trains it
    assert all(not torch.equal(after_first[k], after_second[k]) for k in after_first if "weight" in k)
    assert not _same(head_before, _state(module.head))
    assert record.modes == {(0, False), (1, True)}
    assert len(record.optimizers) == 1


@pytest.mark.parametrize("freeze_epochs", [1, 2])
def test_a_resumed_run_restores_the_frozen_state(quiet_trainer, structures, tmp_path, freeze_epochs):
    checkpoints = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    first = _task(freeze_epochs=freeze_epochs)
    quiet_trainer(1, [checkpoints], enable_checkpointing=True).fit(
        first, datamodule=_data(structures, ["au_fraction"])
    )
    saved = _state(first.trained_encoder)
    resumed = _task(freeze_epochs=freeze_epochs)
    quiet_trainer(2).fit(
        resumed, datamodule=_data(structures, ["au_fraction"]), ckpt_path=str(tmp_path / "last.ckpt")
    )
    # epoch 1 is frozen exactly when freeze_epochs > 1
    assert _same(saved, _state(resumed.trained_encoder)) == (freeze_epochs > 1)


def test_ema_weights_are_evaluated_and_saved(quiet_trainer, structures, tmp_path):
    data = _data(structures, ["au_fraction"])
    checkpoints = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    module = _task(ema_decay=0.9, restore_best=False)  # the last step's average, as saved in last.ckpt
    trainer = quiet_trainer(3, [checkpoints], enable_checkpointing=True)
    trainer.fit(module, datamodule=data)
    assert int(module.ema_updates) == trainer.global_step > 0
    average, online = _state(module.encoder), _state(module.online["encoder"])
    assert all(not torch.equal(average[k], online[k]) for k in average if "weight" in k)
    # contrast.load_encoder reads encoder.*: the average, not the weights the optimiser updated
    loaded = contrast.load_encoder(tmp_path / "last.ckpt").state_dict()
    assert _same(loaded, average)
    # validation and test run the average
    test = [data.test_set[i] for i in range(len(data.test_set))]
    y = np.array([float(g.au_fraction) for g in test])
    (result,) = trainer.test(module, datamodule=data, verbose=False)
    ema_mae = np.abs(predict(module, test).numpy()[:, 0] - y).mean()
    raw = copy.deepcopy(module)  # the same module with the optimiser's weights in the evaluated slots
    raw.encoder.load_state_dict(module.online["encoder"].state_dict())
    raw.head.load_state_dict(module.online["head"].state_dict())
    raw_mae = np.abs(predict(raw, test).numpy()[:, 0] - y).mean()
    assert result["test/mae"] == pytest.approx(ema_mae, rel=1e-4)
    assert abs(raw_mae - ema_mae) > 1e-6
    # the whole module reloads from the checkpoint alone, with both copies
    reloaded = FinetuneTask.load_from_checkpoint(tmp_path / "last.ckpt")
    torch.testing.assert_close(predict(reloaded, test), predict(module, test))


def test_ema_update_is_a_moving_average():
    module = _task(ema_decay=0.5)
    weight = next(module.encoder.parameters())
    before = weight.detach().clone()
    with torch.no_grad():
        next(module.online["encoder"].parameters()).add_(1.0)
    module.update_average()  # first update: min(0.5, 1/10) = 0.1
    torch.testing.assert_close(weight, before + 0.9)
    module.ema_updates.fill_(100)
    module.update_average()  # later: 0.5
    torch.testing.assert_close(weight, before + 0.95)


def _cfg(checkpoint, targets=("au_fraction",), seed=0):
    return OmegaConf.create(
        {
            "seed": seed,
            "encoder": ENCODER,
            "data": {"targets": list(targets)},
            "task": {
                "_target_": "contrast.tasks.finetune.FinetuneTask",
                "checkpoint": checkpoint,
                "seed": seed,
                "head": {"hidden_dim": 8},
                "optimizer": OPTIMIZER,
                "ema_decay": 0.99,
            },
        }
    )


def test_run_setup_starts_from_a_shipped_encoder_by_name(ship_encoder_script, tmp_path, monkeypatch):

    import contrast.pretrained.loading as pretrained

    source = _task()
    with torch.no_grad():
        for p in source.encoder.parameters():
            p.add_(0.1)
    path = tmp_path / "source.ckpt"
    torch.save({"state_dict": source.state_dict(), "hyper_parameters": dict(source.hparams)}, path)
    ship_encoder_script.ship(
        path, "tiny-finetune", {"data": "none", "recipe": "a test"}, out_dir=tmp_path / "models"
    )
    monkeypatch.setattr(pretrained, "MODELS_DIR", tmp_path / "models")
    module, extra = FinetuneTask.run_setup(_cfg("tiny-finetune"))
    assert extra == {}
    shipped = contrast.load_encoder("tiny-finetune").state_dict()
    assert _same(_state(module.encoder), shipped) and _same(_state(module.online["encoder"]), shipped)


def test_run_setup_without_a_checkpoint_is_fresh_and_seeded():
    first, _ = FinetuneTask.run_setup(_cfg(None, seed=3))
    again, _ = FinetuneTask.run_setup(_cfg(None, seed=3))
    other, _ = FinetuneTask.run_setup(_cfg(None, seed=4))
    assert _same(_state(first), _state(again)) and not _same(_state(first), _state(other))
    with pytest.raises(ValueError, match="data.targets"):
        FinetuneTask.run_setup(_cfg(None, targets=()))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"kind": "ranking"}, "kind"),
        ({"readout": "max"}, "readout"),
        ({"kind": "classification", "readout": "sum"}, "one target"),
        ({"layer_decay": 0.0}, "layer_decay"),
        ({"ema_decay": 1.0}, "ema_decay"),
    ],
)
def test_bad_options_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        _task(**options)


def test_classification_learns_and_refuses_bad_labels(quiet_trainer, structures):
    data = _data(structures, ["rich"])
    module = _task(["rich"], kind="classification", num_classes=2)
    trainer = quiet_trainer(8)
    trainer.fit(module, datamodule=data)
    (result,) = trainer.test(module, datamodule=data, verbose=False)
    assert result["test/accuracy"] >= 0.75
    with pytest.raises(ValueError, match="integer labels"):
        quiet_trainer(1).fit(
            _task(["au_fraction"], kind="classification"), datamodule=_data(structures, ["au_fraction"])
        )


def test_early_stopping_ends_a_run_that_stops_improving(quiet_trainer, structures):
    module = _task(optimizer={**OPTIMIZER, "lr": 0.0}, early_stopping={"monitor": "val_loss", "patience": 0})
    trainer = quiet_trainer(5)
    trainer.fit(module, datamodule=_data(structures, ["au_fraction"]))
    assert trainer.current_epoch == 2  # epoch 1 did not improve on epoch 0


def test_composition_report_equals_the_probe_reports_baselines(structures):
    from contrast.evaluation.probes.report import composition_report, probe_report

    dataset = contrast.load_dataset(structures[:24], cutoff=CUTOFF, targets=["au_count"])
    train, test = [dataset[i] for i in range(16)], [dataset[i] for i in range(16, 24)]
    encoder = _task().encoder.eval()
    full = probe_report(encoder, train, test, ["au_count"], seed=1)
    alone = composition_report(train, test, ["au_count"], seed=1)
    assert alone["probe_split"] == full["probe_split"]
    assert alone["au_count"] == {name: full["au_count"][name] for name in ("fractions", "statistics")}


def test_the_best_validation_weights_are_restored_after_fitting(quiet_trainer, structures):
    """Weights spoilt after the second epoch: the weights after fitting are the best epoch's, and validating
    them again gives the best val_loss seen during training."""
    data = _data(structures, ["au_fraction"])
    history = []

    class SpoilAndRecord(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.current_epoch >= 2:
                with torch.no_grad():
                    for p in pl_module.head.parameters():
                        p.add_(torch.randn_like(p))

        def on_validation_end(self, trainer, pl_module):
            history.append(float(trainer.callback_metrics["val_loss"]))

    module = _task(restore_best=True)
    trainer = quiet_trainer(5, [SpoilAndRecord()])
    trainer.fit(module, datamodule=data)
    best = min(history)
    assert history[-1] > best  # the run got worse after its best epoch, so restoring matters
    (again,) = trainer.validate(module, datamodule=data, verbose=False)
    assert again["val_loss"] == pytest.approx(best, rel=1e-5)
