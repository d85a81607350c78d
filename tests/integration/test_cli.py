"""``python -m contrast.train`` end to end: outputs, overrides, sweeps, DDP, kill-and-resume."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch

from tests.integration.cli import children, live_processes, read_metrics, run_train, started_train


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cli-cache")


@pytest.mark.slow
def test_default_pretraining_writes_its_outputs(tmp_path, cache):
    run_dir = tmp_path / "run"
    result = run_train(run_dir, cache)
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    assert (run_dir / "config.yaml").exists()
    assert (run_dir / "splits.json").exists()
    metrics = read_metrics(run_dir)
    assert len(metrics["history"]) == 2
    assert "train_loss" in metrics["last_epoch"] and "val_loss" in metrics["last_epoch"]
    assert "train_loss: first epoch" in result.stdout


@pytest.mark.slow
def test_overrides_reach_the_model(tmp_path, cache):
    run_dir = tmp_path / "run"
    run_train(
        run_dir,
        cache,
        "encoder=schnet",
        "loss.temperature=0.05",
        "trainer.max_epochs=1",
        "data.fractions=[0.7,0.15,0.15]",
    )
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    hparams = checkpoint["hyper_parameters"]
    assert hparams["encoder"]["_target_"].endswith("SchNet")
    assert hparams["loss"]["temperature"] == 0.05
    metrics = read_metrics(run_dir)
    assert len(metrics["history"]) == 1
    assert "test_loss" in metrics["test"]  # the held-out split is scored on views too


@pytest.mark.slow
def test_multirun_sweep(tmp_path, cache):
    sweep = tmp_path / "sweep"
    run_train(sweep, cache, "trainer.max_epochs=1", "loss.temperature=0.05,0.2", multirun=True)
    temperatures = []
    for job in ("0", "1"):
        checkpoint = torch.load(
            sweep / job / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True
        )
        temperatures.append(checkpoint["hyper_parameters"]["loss"]["temperature"])
    assert temperatures == [0.05, 0.2]


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path, cache):
    run_dir = tmp_path / "run"
    run_train(
        run_dir, cache, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_epochs=1"
    )
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    assert len(read_metrics(run_dir)["history"]) == 1


def _final_weights(run_dir):
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return checkpoint["state_dict"], checkpoint["epoch"]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(tmp_path, cache):
    settings = ["trainer.max_epochs=5", "data.num_workers=1", "seed=3"]
    reference = tmp_path / "reference"
    run_train(reference, cache, *settings)

    killed = tmp_path / "killed"
    with started_train(killed, cache, *settings) as process:
        last = killed / "checkpoints" / "last.ckpt"
        deadline = time.time() + 300
        while not last.exists() and time.time() < deadline and process.poll() is None:
            time.sleep(0.05)
        time.sleep(0.3)  # let the checkpoint finish writing
        assert process.poll() is None, "the run finished before it could be killed"
        process.kill()
        process.wait()
    _, epoch_at_kill = _final_weights(killed)
    assert epoch_at_kill < 4

    run_train(killed, cache, *settings, "ckpt_path=last")
    expected, expected_epoch = _final_weights(reference)
    resumed, resumed_epoch = _final_weights(killed)
    assert resumed_epoch == expected_epoch
    for name, tensor in expected.items():
        torch.testing.assert_close(
            resumed[name], tensor, rtol=1e-5, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}"
        )


@pytest.mark.slow
def test_last_checkpoint_holds_the_final_step_between_validations(tmp_path, cache):
    # Validation (and so Lightning's own checkpointing) every 2 steps; max_steps=7 ends training after a
    # step that no validation follows. last.ckpt must still hold step 7, and a resume must go on from there.
    run_dir = tmp_path / "run"
    settings = [
        "trainer.max_epochs=10",
        "+trainer.check_val_every_n_epoch=null",
        "seed=5",
    ]
    run_train(run_dir, cache, *settings, "+trainer.val_check_interval=2", "+trainer.max_steps=7")
    checkpoints = run_dir / "checkpoints"
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    validated = [
        torch.load(path, map_location="cpu", weights_only=True) for path in checkpoints.glob("epoch*.ckpt")
    ]
    assert last["global_step"] == 7
    assert validated and all(c["global_step"] == 6 for c in validated)  # the step the last validation saw
    changed = [k for k, v in last["state_dict"].items() if not v.equal(validated[0]["state_dict"][k])]
    assert changed, "last.ckpt holds the weights of the last validation, not of the last step"

    # Resumed with no validation before its end: Lightning's own end-of-training save must also land in
    # last.ckpt (not a new last-v1.ckpt), so the checkpointing state has to come back from the checkpoint.
    run_train(
        run_dir, cache, *settings, "+trainer.val_check_interval=100", "+trainer.max_steps=9", "ckpt_path=last"
    )
    resumed = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    assert resumed["global_step"] == 9
    assert sorted(p.name for p in checkpoints.glob("last*")) == ["last.ckpt"]


def test_checkpointing_state_keeps_lightnings_key():
    # Checkpoints written by a plain ModelCheckpoint must resume with their state (last_model_path, best).
    import pytorch_lightning as pl

    from contrast.cli.train import FinalCheckpoint

    kwargs = {"save_last": True, "save_top_k": 1}
    assert FinalCheckpoint(**kwargs).state_key == pl.callbacks.ModelCheckpoint(**kwargs).state_key


@pytest.mark.slow
def test_dataloader_workers_end_with_a_killed_trainer(tmp_path, cache):
    # A SIGKILLed trainer (OOM killer, scheduler) must not leave its DataLoader workers holding memory.
    run_dir = tmp_path / "run"
    with started_train(run_dir, cache, "trainer.max_epochs=50", "data.num_workers=1") as process:
        deadline = time.time() + 120
        while not children(process.pid) and time.time() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert children(process.pid), "the trainer started no DataLoader worker"
        time.sleep(0.5)
        # A busy trainer (a long step) reads no batches: the worker's next one waits in the pipe, as it
        # did when a killed run left its worker alive for good.
        os.kill(process.pid, signal.SIGSTOP)
        time.sleep(1.5)
        process.kill()  # the trainer only, not its process group
        process.wait()
        deadline = time.time() + 15
        while live_processes(process.pid, str(run_dir)) and time.time() < deadline:
            time.sleep(0.1)
        left = live_processes(process.pid, str(run_dir))
        assert not left, f"processes of the killed run still alive 15 s later: {left}"


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["barlow", "vicreg"])
def test_alternative_losses_train(tmp_path, loss):
    import math

    import contrast

    summary = contrast.run_training(
        ["experiment=smoke", "logger=none", "trainer.max_epochs=1", f"loss={loss}", "augment=light"],
        run_dir=tmp_path / loss,
    )
    assert math.isfinite(summary["last_epoch"]["train_loss"])
    assert (tmp_path / loss / "checkpoints" / "last.ckpt").exists()
