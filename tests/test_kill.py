"""A run killed with SIGKILL (no handler, no cleanup) or stopped with SIGTERM, and started
again with the same command, ends exactly as a run never interrupted, with the shipped
defaults (progress bar on, W&B offline), its W&B pieces included; a second process started on the
run while it trains stops at once and changes nothing; a kill in the middle of a write leaves
nothing that blocks the resume."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CrashAt, train_run
from wandb_files import check_each_iteration_once, offline_runs, readme_sync_lists

from gansweep.job import train
from gansweep.rundir.durable import IterationCsv
from gansweep.training.gan import LOSS_COLUMNS

pytestmark = pytest.mark.slow

# the shipped digits with their default networks: slow enough to be killed mid-run; the
# progress bar and W&B as shipped
SETTINGS = ["train.iters=90", "train.ckpt_every=7", "train.sample_every=30", "recon.every=10",
            "recon.n_images=8", "recon.steps=5", "final.n_images=16", "final.steps=10",
            "quality.metrics=[fid,kid]", "quality.every=30", "quality.n_samples=200",
            "quality.kid_subset_size=100"]
# train.csv rows at which a signal is due, and which
KILLS = ((15, signal.SIGKILL), (40, signal.SIGTERM), (70, signal.SIGKILL))


def user_env() -> dict:
    """A user's environment: none of the WANDB_* variables that W&B runs earlier in this
    pytest process exported (its mode, the address of its service, which ends with them), so
    the shipped default (offline) applies."""
    return {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}


def command(output_dir: Path) -> list[str]:
    return [sys.executable, "-m", "gansweep", f"paths.output_dir={output_dir}", *SETTINGS]


def rows_written(output_dir: Path) -> int:
    csvs = list(output_dir.glob("runs/*/train.csv"))
    return len(csvs[0].read_text().splitlines()) - 1 if csvs else 0


def run_and_kill(output_dir: Path, at_rows: int, delay: float, signum: int,
                 second_writer: bool = False) -> None:
    """Start the command, send it `signum` once train.csv has `at_rows` rows plus `delay` s;
    with `second_writer`, first start the same command beside it, which must stop at once."""
    process = subprocess.Popen(command(output_dir), cwd=output_dir.parent, env=user_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while rows_written(output_dir) < at_rows:
        assert process.poll() is None, f"the run ended before the kill:\n{process.stdout.read()}"
        assert time.monotonic() < deadline, "no progress in 240 s"
        time.sleep(0.02)
    if second_writer:
        (csv_path,) = output_dir.glob("runs/*/train.csv")
        process.send_signal(signal.SIGSTOP)  # alive, holding the run, while the second starts
        second = subprocess.run(command(output_dir), cwd=output_dir.parent, env=user_env(),
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 1
        said = second.stdout + second.stderr  # Hydra logs to stdout
        assert f"{csv_path.parent} is being trained by pid {process.pid} on host " in said
        assert "Traceback" not in said
        process.send_signal(signal.SIGCONT)
        assert process.poll() is None  # the first one trains on
    time.sleep(delay)  # random: the kill lands at any point, a write included
    process.send_signal(signum)
    if signum == signal.SIGKILL:
        assert process.wait(30) == -signal.SIGKILL
    else:  # stops at the end of the iteration, says so, exits 128 + the signal
        code = process.wait(60)
        said = process.stdout.read()
        assert code == 128 + signum, said[-3000:]
        assert "Traceback" not in said
        assert f"stopped by {signal.Signals(signum).name} at iteration" in said
        assert "run the same command to resume" in said
    process.stdout.close()


def test_sigkilled_runs_resume_to_the_uninterrupted_result(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    for output_dir in (straight, killed):
        output_dir.mkdir()
    subprocess.run(command(straight), cwd=tmp_path, check=True, capture_output=True,
                   timeout=300, env=user_env())

    delays = random.Random(0)
    for i, (at_rows, signum) in enumerate(KILLS):
        run_and_kill(killed, at_rows, delays.uniform(0, 0.15), signum, second_writer=i == 0)
    assert not list(killed.glob("runs/*/summary.json"))  # it really was cut short
    done = subprocess.run(command(killed), cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=user_env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert "final test:" in done.stderr  # the shipped defaults show the final test working

    (run_straight,), (run_killed,) = (list(d.glob("runs/*")) for d in (straight, killed))
    for name in ("train.csv", "recon.csv", "quality.csv"):
        assert (run_killed / name).read_text() == (run_straight / name).read_text()
    assert json.loads((run_killed / "summary.json").read_text()) == \
        json.loads((run_straight / "summary.json").read_text())
    assert not (run_killed / "run.lock").exists()

    # W&B: one piece per process, each iteration once across them, in order, with the
    # uninterrupted run's values (those a kill took from W&B replayed from the run's files)
    pieces = offline_runs(run_killed / "wandb", finished=False)
    assert len(pieces) == len(KILLS) + 1
    killed_rows = check_each_iteration_once(pieces, 90)
    straight_rows = check_each_iteration_once(offline_runs(run_straight / "wandb"), 90)
    for key in [f"train/{c}" for c in LOSS_COLUMNS] + ["recon/running"]:
        assert [(r["trainer/iter"], pytest.approx(r[key], rel=1e-6)) for r in straight_rows
                if key in r] == [(r["trainer/iter"], r[key]) for r in killed_rows if key in r]
    assert readme_sync_lists(pieces, killed, user_env())



def test_what_a_kill_during_a_write_leaves_does_not_block_the_resume(make_cfg, tmp_path):
    """Checkpoints and summaries are written to a temporary file and renamed, CSV rows are
    appended line by line: a kill mid-write leaves a torn temporary file or a torn last
    row. Neither is read back, and the resumed run is the uninterrupted one."""
    straight = train_run(make_cfg(f"run_dir={tmp_path}/straight"))
    cfg = make_cfg()  # 6 iterations, a checkpoint at 3
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, callbacks=[CrashAt(4)])
    run = Path(cfg.run_dir)
    (run / "checkpoints" / "last.ckpt.tmp").write_bytes(b"PK\x03\x04 torn")
    (run / "summary.json.tmp").write_text('{"status": "fin')
    with open(run / "train.csv", "a") as f:
        f.write("5,0.69")  # a row cut short
    assert IterationCsv(run / "train.csv", LOSS_COLUMNS).read()[-1]["iter"] == "4"

    resumed = train_run(cfg)
    for name in ("train.csv", "recon.csv"):
        assert (resumed / name).read_text() == (straight / name).read_text()
    assert json.loads((resumed / "summary.json").read_text()) == \
        json.loads((straight / "summary.json").read_text())
