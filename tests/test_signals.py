"""Interrupted is not done (gansweep/training/signals.py): SIGTERM, SIGINT and an unhandled SIGUSR
stop a run at the end of the iteration with a checkpoint, and the process ends non-zero with one
line; the same command then resumes to the uninterrupted result. With the shipped defaults:
the progress bar on and W&B offline."""

from __future__ import annotations

import json
import os
import signal

import lightning as L
import pytest
import torch
from conftest import SignalAt, numbers, train_run

from gansweep.job import train
from gansweep.training.signals import Interrupted, stop_at_once

# what a user runs: the bar and W&B as shipped
SHIPPED = ["trainer.enable_progress_bar=true", "wandb.mode=offline"]


@pytest.fixture(autouse=True)
def not_a_submitit_job(monkeypatch):
    monkeypatch.delenv("SUBMITIT_FOLDER", raising=False)


def same_files(run, straight, names=("train.csv", "recon.csv", "summary.json")):
    for name in names:
        assert (run / name).read_text() == (straight / name).read_text(), name


# the fast subset keeps SIGTERM's case (about 2 s each); the others take the same path
@pytest.mark.parametrize("signum", [signal.SIGTERM,
                                    *(pytest.param(s, marks=pytest.mark.slow)
                                      for s in (signal.SIGINT, signal.SIGUSR1))])
def test_a_signal_stops_at_the_iteration_with_a_checkpoint_and_the_rerun_resumes(
        make_cfg, tmp_path, signum):
    cfg = make_cfg(*SHIPPED)
    handler = signal.getsignal(signum)
    with pytest.raises(Interrupted) as stop:
        train(cfg, callbacks=[SignalAt(4, signum)])
    assert stop.value.exit_code == 128 + signum  # 143 for SIGTERM, as a shell counts
    assert f"stopped by {signal.Signals(signum).name} at iteration 4" in str(stop.value)
    assert "run the same command to resume" in str(stop.value)
    run = tmp_path / "run"
    assert torch.load(run / "checkpoints" / "last.ckpt",
                      weights_only=False)["gansweep"]["iteration"] == 4
    assert not (run / "summary.json").exists()  # not done
    assert signal.getsignal(signum) == handler  # the process's handlers given back

    train(cfg)  # the same command again
    straight = train_run(make_cfg(*SHIPPED, f"run_dir={tmp_path}/straight"))
    same_files(run, straight)


def test_a_second_signal_stops_at_once(make_cfg):
    class Twice(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if pl_module.iteration + 1 == 2:
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted, match="second signal"):
        train(make_cfg(), callbacks=[Twice()])


def test_outside_training_a_signal_stops_at_once():
    with pytest.raises(Interrupted, match="SIGTERM outside training") as stop:
        with stop_at_once():
            os.kill(os.getpid(), signal.SIGTERM)
    assert stop.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None)


def test_in_a_submitit_job_sigterm_checkpoints_and_training_goes_on(make_cfg, tmp_path,
                                                                    monkeypatch):
    # submitit bypasses SIGTERM (SLURM sends it beside the requeue signal); gansweep keeps
    # that, saving what was done
    monkeypatch.setenv("SUBMITIT_FOLDER", "/nonexistent")
    saved = []

    class Watch(L.Callback):
        def on_save_checkpoint(self, trainer, pl_module, checkpoint):
            saved.append(pl_module.iteration)

    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # submitit's bypass
    try:
        run = train_run(make_cfg(), callbacks=[SignalAt(2, signal.SIGTERM), Watch()])
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert 2 in saved  # a checkpoint at the signal's iteration (the periodic one is at 3)
    assert json.loads((run / "summary.json").read_text())["iters_done"] == 6


@pytest.mark.slow  # 3.7 s; the fast subset stops a run alone
def test_a_packed_job_stopped_by_sigterm_resumes_every_seed_as_never_stopped(make_cfg,
                                                                            tmp_path):
    from gansweep.rundir.names import seed_run_dirs

    cfg = make_cfg("train.seeds=[0,1]", *SHIPPED)
    with pytest.raises(Interrupted, match="at iteration 4"):
        train(cfg, callbacks=[SignalAt(4, signal.SIGTERM)])
    dirs = seed_run_dirs(cfg)
    for run in dirs.values():
        assert numbers(run)[-1, 0] == 4 and not (run / "summary.json").exists()
    train(cfg)
    straight = make_cfg("train.seeds=[0,1]", *SHIPPED, f"run_dir={tmp_path}/straight")
    train(straight)
    for seed, run in dirs.items():
        same_files(run, seed_run_dirs(straight)[seed])
