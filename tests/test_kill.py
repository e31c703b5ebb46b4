"""A run killed with SIGKILL (no handler, no cleanup) and started again with the same command
ends exactly as a run never interrupted; a kill in the middle of a write leaves nothing that
blocks the resume."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CrashAt
from gansweep.history import IterationCsv
from gansweep.train import train

pytestmark = pytest.mark.slow

# the shipped digits with their default networks: slow enough to be killed mid-run
SETTINGS = ["train.iters=90", "train.ckpt_every=7", "train.sample_every=30", "recon.every=10",
            "recon.n_images=8", "recon.steps=5", "final.n_images=16", "final.steps=10",
            "trainer.enable_progress_bar=false", "wandb.mode=disabled"]
KILL_AFTER_ROWS = (15, 40, 70)  # train.csv rows at which a kill is due


def command(output_dir: Path) -> list[str]:
    return [sys.executable, "-m", "gansweep", f"paths.output_dir={output_dir}", *SETTINGS]


def rows_written(output_dir: Path) -> int:
    csvs = list(output_dir.glob("runs/*/train.csv"))
    return len(csvs[0].read_text().splitlines()) - 1 if csvs else 0


def run_and_kill(output_dir: Path, at_rows: int, delay: float) -> None:
    """Start the command, SIGKILL it once train.csv has `at_rows` rows plus `delay` s."""
    process = subprocess.Popen(command(output_dir), cwd=output_dir.parent,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while rows_written(output_dir) < at_rows:
        assert process.poll() is None, f"the run ended before the kill:\n{process.stderr.read()}"
        assert time.monotonic() < deadline, "no progress in 240 s"
        time.sleep(0.02)
    time.sleep(delay)  # random: the kill lands at any point, a write included
    process.send_signal(signal.SIGKILL)
    assert process.wait(30) == -signal.SIGKILL
    process.stderr.close()


def test_sigkilled_runs_resume_to_the_uninterrupted_result(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    for output_dir in (straight, killed):
        output_dir.mkdir()
    subprocess.run(command(straight), cwd=tmp_path, check=True, capture_output=True,
                   timeout=300)

    delays = random.Random(0)
    for at_rows in KILL_AFTER_ROWS:
        run_and_kill(killed, at_rows, delays.uniform(0, 0.15))
    assert not list(killed.glob("runs/*/summary.json"))  # it really was cut short
    done = subprocess.run(command(killed), cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    (run_straight,), (run_killed,) = (list(d.glob("runs/*")) for d in (straight, killed))
    for name in ("train.csv", "recon.csv"):
        assert (run_killed / name).read_text() == (run_straight / name).read_text()
    assert json.loads((run_killed / "summary.json").read_text()) == \
        json.loads((run_straight / "summary.json").read_text())


def test_what_a_kill_during_a_write_leaves_does_not_block_the_resume(make_cfg, tmp_path):
    """Checkpoints and summaries are written to a temporary file and renamed, CSV rows are
    appended line by line: a kill mid-write leaves a torn temporary file or a torn last
    row. Neither is read back, and the resumed run is the uninterrupted one."""
    straight = train(make_cfg(f"run_dir={tmp_path}/straight"))
    cfg = make_cfg()  # 6 iterations, a checkpoint at 3
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, callbacks=[CrashAt(4)])
    run = Path(cfg.run_dir)
    (run / "checkpoints" / "last.ckpt.tmp").write_bytes(b"PK\x03\x04 torn")
    (run / "summary.json.tmp").write_text('{"status": "fin')
    with open(run / "train.csv", "a") as f:
        f.write("5,0.69")  # a row cut short
    assert IterationCsv(run / "train.csv", []).read()[-1]["iter"] == "4"

    resumed = train(cfg)
    for name in ("train.csv", "recon.csv"):
        assert (resumed / name).read_text() == (straight / name).read_text()
    assert json.loads((resumed / "summary.json").read_text()) == \
        json.loads((straight / "summary.json").read_text())
