"""The cluster path on a real SLURM cluster (`launch/local_slurm.sh start`; `.ci/run` starts
it): the submitit launcher, two DDP processes (gloo) per job, a preempted job requeued and
resumed, a sweep re-run that skips finished runs, DDP against a single process."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_gansweep
from wandb_files import check_each_iteration_once, offline_runs, readme_sync_lists

pytestmark = pytest.mark.slow

# Slow enough (digits, the default networks, ~0.1 s per iteration with 2 processes on 2
# cores) that the test can signal a job mid-run; quick tests; the progress bar and W&B as
# shipped (a preempted job with the bar on must resume too).
SWEEP = ["train.iters=80", "train.ckpt_every=40", "recon.every=10", "recon.n_images=8",
         "recon.steps=5", "final.n_images=16", "final.steps=10"]


def cluster_is_up() -> bool:
    if not shutil.which("sbatch"):
        return False
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=15).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="module")
def slurm():
    if not cluster_is_up():
        message = "no SLURM cluster answers here; start one with `launch/local_slurm.sh start`"
        if os.environ.get("GANSWEEP_REQUIRE_SLURM"):
            pytest.fail(message)
        pytest.skip(message)


def user_env() -> dict:
    """A user's environment: without the WANDB_MODE that earlier W&B runs in this pytest
    process exported (W&B's offline mode sets it), so the default, offline, applies."""
    return {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}


def gansweep(*args: str) -> list[str]:
    return [sys.executable, "-m", "gansweep", *args]


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def wait_for(condition, timeout: float, what: str, process: subprocess.Popen):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process.poll() is not None:
            raise AssertionError(f"the sweep ended (exit code {process.returncode}) before "
                                 f"{what}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def rows_in(pattern: str, root: Path, at_least: int):
    for path in root.glob(pattern):
        if len(path.read_text().splitlines()) > at_least:
            return path
    return None


def test_a_preempted_job_of_a_slurm_sweep_resumes_and_matches_an_uninterrupted_one(
        slurm, tmp_path):
    # Two grid points that train identically (they differ only in when sample grids are
    # saved): one is preempted mid-run, the other is the uninterrupted reference.
    command = gansweep("-m", "hydra/launcher=local_slurm", f"paths.output_dir={tmp_path}",
                       *SWEEP, "train.sample_every=1000,2000")
    with open(tmp_path / "sweep.log", "w") as log:
        sweep = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                                 env=user_env())
        try:
            csv_path = wait_for(
                lambda: rows_in("sweeps/*/*train.sample_every=1000/train.csv", tmp_path, 10),
                timeout=300, what="the first job to train 10 iterations", process=sweep)
            sweep_dir = csv_path.parent.parent
            (job_id,) = [p.name for p in (sweep_dir / ".submitit").glob("*_0")]
            # what SLURM sends `signal_delay_s` before a time limit, or on preemption
            subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
            assert sweep.wait(timeout=600) == 0, (tmp_path / "sweep.log").read_text()[-3000:]
        finally:
            if sweep.poll() is None:
                sweep.send_signal(signal.SIGINT)
                subprocess.run(["scancel", "--name=gansweep"])

    victim, reference = csv_path.parent, sweep_dir / csv_path.parent.name.replace("=1000", "=2000")
    job_log = "".join(p.read_text() for p in (sweep_dir / ".submitit" / job_id).glob("*_0_log.out"))
    assert "Starting with 2 processes" in job_log  # one job, two DDP ranks from SLURM
    assert "saving" in job_log and f"Requeued job {job_id}" in job_log
    assert job_log.count("Restored all states from the checkpoint") == 1

    # nothing lost, nothing repeated, and the same numbers as the uninterrupted run
    assert [int(r["iter"]) for r in rows(victim / "train.csv")] == list(range(1, 81))
    assert [int(r["iter"]) for r in rows(victim / "recon.csv")] == list(range(10, 81, 10))
    for name in ("train.csv", "recon.csv"):
        assert (victim / name).read_bytes() == (reference / name).read_bytes(), name
    summary = json.loads((victim / "summary.json").read_text())
    assert summary == json.loads((reference / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["iters_done"] == 80

    # one W&B run, continued by the requeued job, with every running test once
    first, second = offline_runs(victim / "wandb")
    assert first.run.run_id == second.run.run_id == (victim / "wandb_id.txt").read_text()
    logged = first.series("recon/running") + second.series("recon/running")
    assert [(i, pytest.approx(float(r["recon_mse"]), rel=1e-6))
            for i, r in ((int(r["iter"]), r) for r in rows(victim / "recon.csv"))] == logged
    # the two pieces hold each iteration once, in order, and the README's line uploads both
    check_each_iteration_once([first, second], 80)
    assert readme_sync_lists([first, second], tmp_path, user_env())

    # a row per swept setting, and the two agree in everything but it
    table = rows(sweep_dir / "table.csv")
    assert [r.pop("train.sample_every") for r in table] == ["1000", "2000"]
    assert table[0] == table[1] and table[0]["status"] == "1 finished"

    # the same command again: every run is found finished and skipped
    mtime = (victim / "recon.csv").stat().st_mtime_ns
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                           env=user_env())
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    rank0_logs = "".join(p.read_text() for p in (sweep_dir / ".submitit").glob("*/*_0_log.out"))
    assert rank0_logs.count("gansweep: run already finished at iteration 80, skipped") == 2
    assert (victim / "recon.csv").stat().st_mtime_ns == mtime


def first_losses(run_dir: Path, iterations: int) -> list[float]:
    """d_loss, g_loss, d_real, d_fake of the first iterations, one flat list."""
    return [float(r[k]) for r in rows(run_dir / "train.csv")[:iterations]
            for k in ("d_loss", "g_loss", "d_real", "d_fake")]


def one_process_and_srun(tmp_path: Path, settings: list[str], monkeypatch,
                         capsys) -> tuple[Path, Path, str]:
    """The same run as one process (this one) and as 2 DDP ranks under `srun`: both run
    directories, and what the DDP run printed."""
    run_gansweep(monkeypatch, capsys, tmp_path, f"paths.output_dir={tmp_path}/one", *settings)
    ddp = subprocess.run(["srun", "--ntasks=2", "--ntasks-per-node=2", "--job-name=gansweep",
                          *gansweep(f"paths.output_dir={tmp_path}/ddp", *settings)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    (run_one,) = (tmp_path / "one" / "runs").iterdir()
    (run_ddp,) = (tmp_path / "ddp" / "runs").iterdir()
    return run_one, run_ddp, ddp.stdout + ddp.stderr


@pytest.mark.parametrize("norm, extra", [("wn", []),
                                         ("vanilla", ["loss=wasserstein", "penalty=wgan_gp"])])
def test_ddp_under_srun_gives_the_single_process_numbers(slurm, tmp_path, norm, extra,
                                                         monkeypatch, capsys):
    """`train.batch_size` is the global batch: two ranks with half of it each train as one
    process with all of it (up to float rounding, which GAN training amplifies within a few
    iterations, as it does between thread counts of one process). BN would need SyncBN,
    which torch runs on GPUs only. A gradient penalty too: each rank draws the whole batch's
    random points and keeps its half, and its per-image terms average as the batch's do."""
    settings = [f"norm={norm}", *extra, "train.iters=2",
                "recon.every=2", "recon.n_images=8", "recon.steps=5", "final.n_images=16",
                "final.steps=10", "trainer.enable_progress_bar=false", "wandb.mode=disabled"]
    run_one, run_ddp, ddp_output = one_process_and_srun(tmp_path, settings, monkeypatch, capsys)
    assert "Starting with 2 processes" in ddp_output
    ddp_losses, one_losses = first_losses(run_ddp, 2), first_losses(run_one, 2)
    # iteration 1: the losses of the initial nets and G's loss after D's first step
    assert ddp_losses[:4] == pytest.approx(one_losses[:4], rel=1e-5)
    assert ddp_losses[4:] == pytest.approx(one_losses[4:], rel=1e-3)
    recon_one, recon_ddp = rows(run_one / "recon.csv"), rows(run_ddp / "recon.csv")
    assert float(recon_ddp[0]["recon_mse"]) == pytest.approx(float(recon_one[0]["recon_mse"]),
                                                             rel=1e-4)
    # sample quality (on by default): computed once, by rank 0 (no rank waits for another:
    # it ended), of the same G up to the rounding above (1% in FID seen)
    quality_one, quality_ddp = rows(run_one / "quality.csv"), rows(run_ddp / "quality.csv")
    assert [r["iter"] for r in quality_ddp] == [r["iter"] for r in quality_one] == ["2"]
    for column in ("fid[digits-classifier]", "kid[digits-classifier]"):
        assert float(quality_ddp[0][column]) == pytest.approx(float(quality_one[0][column]),
                                                              rel=5e-2)
    summary = json.loads((run_ddp / "summary.json").read_text())
    assert summary["quality_features"] == "digits-classifier" and summary["final_fid"] > 0


def test_without_syncbn_bn_normalises_each_ranks_half_batch(slurm, tmp_path, monkeypatch,
                                                            capsys):
    settings = ["norm=bn", "train.iters=1", "recon.every=1", "recon.n_images=8",
                "recon.steps=5", "final.n_images=16", "final.steps=10",
                "trainer.enable_progress_bar=false", "wandb.mode=disabled"]
    run_one, run_ddp, _ = one_process_and_srun(tmp_path, settings, monkeypatch, capsys)
    assert first_losses(run_ddp, 1) != pytest.approx(first_losses(run_one, 1), rel=1e-3)


def test_an_early_divergence_restarts_every_rank_of_a_ddp_run(slurm, tmp_path):
    """Both ranks see the divergence (losses and the running test are shared), rank 0 moves
    the attempt aside, and both start over with the next seed. A running test whose z steps
    overflow (recon.lr=1e38) makes any seed diverge at its first test."""
    settings = ["train.iters=4", "recon.every=2", "recon.lr=1e38", "recon.n_images=8",
                "recon.steps=5", "final.n_images=16", "final.steps=10",
                "train.restart_on_early_divergence=2", "train.max_restarts=1",
                "trainer.enable_progress_bar=false", "wandb.mode=disabled"]
    done = subprocess.run(["srun", "--ntasks=2", "--ntasks-per-node=2", "--job-name=gansweep",
                           *gansweep(f"paths.output_dir={tmp_path}", *settings)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert "Starting with 2 processes" in output
    assert output.count("attempt 0 (seed 0) diverged at iteration 2") == 1  # rank 0 says it
    (run,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["seed"] == 1_000_000
    assert summary["restarts"] == [{"seed": 0, "diverged_at": 2, "dir": "restarts/0"}]
    assert [int(r["iter"]) for r in rows(run / "train.csv")] == [1, 2]
    assert [int(r["iter"]) for r in rows(run / "restarts" / "0" / "train.csv")] == [1, 2]


def queued_jobs() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout
    return out.split()


@pytest.mark.parametrize("ask, setting", [
    ("hydra.launcher.gpus_per_node=1", "gpus_per_node=1"),  # the local cluster has no GPUs
    ("hydra.launcher.partition=nope", "partition=nope"),
])
def test_a_grid_the_cluster_cannot_run_ends_with_one_line_naming_the_setting(
        slurm, tmp_path, ask, setting):
    before = queued_jobs()
    proc = subprocess.run(
        gansweep("-m", "hydra/launcher=local_slurm", ask, "norm=vanilla,wn", *SWEEP,
                 f"paths.output_dir={tmp_path}"),
        capture_output=True, text=True, timeout=120, env=user_env(), cwd=tmp_path)
    said = proc.stdout + proc.stderr
    assert proc.returncode == 1, said[-3000:]
    assert "Traceback" not in said, said[-3000:]
    (line,) = [line for line in said.splitlines() if "SLURM refuses" in line]
    assert f"hydra.launcher.{setting}" in line and "sbatch said" in line
    # Earlier tests' jobs may leave the queue meanwhile; none may join it.
    assert set(queued_jobs()) <= set(before)


def test_each_refusal_names_its_setting():
    from gansweep.slurm_preflight import explain

    settings = {"account": "physics", "qos": "high", "timeout_min": 9999, "partition": "gpu"}
    for error, setting in [
        ("sbatch: error: Batch job submission failed: Invalid account or account/partition "
         "combination specified", "hydra.launcher.account=physics"),
        ("sbatch: error: Batch job submission failed: Invalid qos specification",
         "hydra.launcher.qos=high"),
        ("sbatch: error: Batch job submission failed: Requested time limit is invalid "
         "(missing or exceeds some limit)", "hydra.launcher.timeout_min=9999"),
        ("sbatch: error: something new", "hydra.launcher.* settings"),
    ]:
        line = explain(error, settings)
        assert setting in line and "\n" not in line, line


def test_the_test_submission_asks_for_what_submitit_will():
    from gansweep.slurm_preflight import sbatch_options

    options = sbatch_options({
        "partition": "gpu", "gpus_per_node": 4, "tasks_per_node": 4, "cpus_per_task": 8,
        "mem_gb": 64, "timeout_min": 1440, "gres": None, "array_parallelism": 64,
        "additional_parameters": {"mail_type": "END", "exclusive": True}})
    assert sorted(options) == sorted([
        "--partition=gpu", "--gpus-per-node=4", "--ntasks-per-node=4", "--cpus-per-task=8",
        "--mem=64GB", "--time=1440", "--mail-type=END", "--exclusive"])
