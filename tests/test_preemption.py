"""SLURM's warning signal inside a submitit job, in one process: checkpoint at the end of the
iteration, close the run's files, then hand over to submitit's handler. Submitit's handler
(which would requeue through `scontrol` and exit) is replaced by a recorder; the real one is
exercised on the local cluster in tests/test_slurm.py."""

import csv
import json
import signal

import pytest
import torch
from conftest import SignalAt, train_run

from gansweep.job import train


@pytest.fixture
def submitit_job(monkeypatch):
    """This process as a submitit job; yields the calls its requeue handler receives."""
    monkeypatch.setenv("SUBMITIT_FOLDER", "/nonexistent")
    monkeypatch.delenv("SUBMITIT_PREEMPT_SIGNAL", raising=False)
    calls = []

    def requeue(signum, frame):
        calls.append(signum)

    previous = signal.signal(signal.SIGUSR2, requeue)
    yield calls
    assert signal.getsignal(signal.SIGUSR2) is requeue  # gansweep put submitit's back
    signal.signal(signal.SIGUSR2, previous)


def iters(path):
    with open(path, newline="") as f:
        return [int(r["iter"]) for r in csv.DictReader(f)]


@pytest.mark.parametrize("compiled", [
    pytest.param(False), pytest.param(True, marks=pytest.mark.slow)])  # train.compile
def test_signal_checkpoints_at_the_iteration_then_hands_over_to_submitit(make_cfg, tmp_path,
                                                                       submitit_job, compiled):
    # vanilla compiled: graphs test_compile compiles too (inductor's cache then compiles them
    # once); what is tested here is the signal, whatever the norm
    speed = ["train.compile=default", "norm=vanilla"] if compiled else []
    cfg = make_cfg("wandb.mode=offline", *speed)
    run = train_run(cfg, callbacks=[SignalAt(4)])
    assert submitit_job == [signal.SIGUSR2]  # requeued once, after training stopped
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["gansweep"]["iteration"] == 4  # the iteration the signal came in
    assert iters(run / "train.csv") == [1, 2, 3, 4]
    assert not (run / "summary.json").exists()  # not finished: the requeued job finishes it

    # the requeued job: resumes at 5 and ends as a run never signalled
    submitit_job.clear()
    train(cfg)
    assert submitit_job == []
    straight = train_run(make_cfg(*speed, f"run_dir={tmp_path}/straight"))
    for name in ("train.csv", "recon.csv"):
        assert (run / name).read_text() == (straight / name).read_text()
    assert json.loads((run / "summary.json").read_text()) == \
        json.loads((straight / "summary.json").read_text())


def test_outside_submitit_the_signal_is_left_alone(make_cfg, monkeypatch):
    monkeypatch.delenv("SUBMITIT_FOLDER", raising=False)
    calls = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: calls.append(signum))
    try:
        run = train_run(make_cfg(), callbacks=[SignalAt(4)])
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert calls == [signal.SIGUSR2]  # whoever installed a handler still gets the signal
    assert json.loads((run / "summary.json").read_text())["iters_done"] == 6


@pytest.mark.slow  # 2.6 s; the fast subset signals a run alone
def test_a_packed_job_signalled_checkpoints_every_seed_and_resumes_as_never_signalled(
        make_cfg, tmp_path, submitit_job):
    from gansweep.rundir.names import seed_run_dirs

    cfg = make_cfg("train.seeds=[0,1]")
    train(cfg, callbacks=[SignalAt(4)])
    assert submitit_job == [signal.SIGUSR2]
    dirs = seed_run_dirs(cfg)
    for run in dirs.values():
        checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
        assert checkpoint["gansweep"]["iteration"] == 4
        assert iters(run / "train.csv") == [1, 2, 3, 4]
        assert not (run / "summary.json").exists()

    submitit_job.clear()
    train(cfg)  # the requeued job
    straight = make_cfg("train.seeds=[0,1]", f"run_dir={tmp_path}/straight")
    train(straight)
    for seed, run in dirs.items():
        other = seed_run_dirs(straight)[seed]
        for name in ("train.csv", "recon.csv", "summary.json"):
            assert (run / name).read_text() == (other / name).read_text(), (seed, name)
