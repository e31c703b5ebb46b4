"""The real entry point, `python -m gansweep`, as a user runs it: single run, -m, a wheel.

The first run, the wheel and missing data run in a new interpreter each, as a user's
command does; the sweeps run `python -m gansweep -m ...` in this process
(conftest.run_gansweep, the same entry point), which spares each a start-up of torch."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY, TINY_RUN, run_gansweep

from gansweep.rundir.names import run_name

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def gansweep(cwd, *args, python=sys.executable, env=None):
    proc = subprocess.run([python, "-m", "gansweep", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def run_dirs(out):
    return [Path(line.split("outputs in ")[1]) for line in out.splitlines() if "outputs in " in line]


def test_single_run_writes_a_findable_run_directory_and_a_quiet_console(tmp_path):
    from gansweep.console import NOISE, TIP

    # W&B and sample quality on, as by default
    command = [*[o for o in TINY if not o.startswith(("wandb.", "quality."))],
               "wandb.mode=offline", "seed=3"]
    out = gansweep(tmp_path, *command)
    # gansweep's lines, not third-party noise
    assert "gansweep: run finished" in out and "wandb: " in out
    for noise in [*NOISE, TIP, "The anonymous setting has no effect"]:
        assert noise not in out, noise
    # the srun hint is only printed where srun exists: this checks something only there
    assert shutil.which("srun") or os.environ.get("GANSWEEP_REQUIRE_SLURM") != "1"
    (run,) = run_dirs(out)
    # named by its overrides, minus those that do not change results
    ignored = ("trainer.enable_progress_bar", "wandb.mode")
    expected = ",".join(sorted(o for o in command if not o.startswith(ignored)))
    assert run == tmp_path / "outputs" / "runs" / run_name(expected)  # bounded if long
    assert run.name[:100] == expected[:100]
    for name in ("config.yaml", "split.json", "train.csv", "quality.csv", "checkpoints/last.ckpt",
                 "samples/iter_000006.png", ".hydra/overrides.yaml"):
        assert (run / name).exists(), name
    # the same command again finds the same directory, which is already complete
    again = gansweep(tmp_path, *command)
    assert "already finished at iteration 6, skipped" in again
    assert run_dirs(again) == [run]
    assert [p.name for p in (tmp_path / "outputs" / "runs").iterdir()] == [run.name]


def test_multirun_runs_each_norm_one_after_another(tmp_path, monkeypatch, capsys):
    out = run_gansweep(monkeypatch, capsys, tmp_path, "-m", "norm=vanilla,bn,wn", *TINY)
    (sweep,) = (tmp_path / "outputs" / "sweeps").iterdir()
    assert sweep.name.startswith("arch.") and "+norm=vanilla,bn,wn+" in sweep.name
    runs = run_dirs(out)
    assert [r.parent for r in runs] == [sweep] * 3
    for run, norm in zip(runs, ["vanilla", "bn", "wn"]):  # in order, one process
        assert f"norm={norm}," in run.name
        assert (run / "checkpoints" / "last.ckpt").exists()
        assert f"norm: {norm}" in (run / "config.yaml").read_text()
    assert out.count("finished at iteration 6") == 3
    assert (sweep / "multirun.yaml").exists()
    # the sweep ends with the paper's table, printed and written
    assert ("| norm | best iteration | running loss | final loss | rise after best | worst rise"
            " | diverged | runs | status |") in out
    assert out.count(" | 1 | 1 finished |") == 3
    assert {p.name for p in sweep.iterdir()} >= {"table.md", "table.csv", "table.tex",
                                                 "recon.png"}
    # re-running the same sweep finds the same directories (later: skips finished runs)
    again = run_gansweep(monkeypatch, capsys, tmp_path, "-m", "norm=vanilla,bn,wn", *TINY)
    assert run_dirs(again) == runs
    assert again.count("already finished at iteration 6, skipped") == 3


def test_configs_are_found_from_an_installed_wheel(tmp_path):
    """Built as a wheel and installed non-editable, away from the checkout, the app still
    composes its configs and trains."""
    dist, site, work = tmp_path / "dist", tmp_path / "site", tmp_path / "work"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(dist), str(ROOT)], check=True, capture_output=True)
    (wheel,) = dist.glob("gansweep-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), str(wheel)], check=True, capture_output=True)
    # The machine's environment stays (an MPI or CUDA setup may live in it); only the path
    # to an editable checkout goes.
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import gansweep; print(gansweep.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(site))  # the wheel's copy, not the checkout
    out = gansweep(work, *TINY, env=env)
    assert "finished at iteration 6" in out
    assert (site / "gansweep" / "conf" / "norm" / "wn.yaml").exists()


def test_missing_data_is_one_clear_message_without_traceback(tmp_path):
    def gansweep(*args):
        proc = subprocess.run([sys.executable, "-m", "gansweep", "dataset=celeba",
                               f"dataset.root={tmp_path}/nowhere", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300,
                              env={**os.environ, "TORCH_HOME": str(tmp_path / "torch")})
        assert proc.returncode == 1
        return proc.stdout + proc.stderr

    # sample quality on CelebA is in Inception's features, whose file is checked first
    assert "gansweep: no Inception weights at" in gansweep()
    out = gansweep("quality.metrics=[]")
    assert f"data set 'celeba' not found at {tmp_path}/nowhere/img_align_celeba" in out
    assert "Traceback" not in out
    assert not (tmp_path / "outputs" / "runs").exists() or not any(
        (tmp_path / "outputs" / "runs").rglob("*.ckpt"))  # nothing trained


def test_the_arch_by_norm_grid_runs_on_the_default_data(tmp_path, monkeypatch, capsys):
    """`-m arch=dcgan,resnet norm=vanilla,bn,wn,sn` with the digits defaults of each arch
    (conf/arch_dataset/*_digits.yaml), shortened."""
    short = [o for o in TINY_RUN if not o.startswith("train.iters")] + ["train.iters=2"]
    out = run_gansweep(monkeypatch, capsys, tmp_path, "-m", "arch=dcgan,resnet",
                       "norm=vanilla,bn,wn,sn", *short)
    runs = run_dirs(out)
    assert len(runs) == 8 and out.count("finished at iteration 2") == 8
    pairs = {(json.loads((r / "summary.json").read_text())["arch"],
              json.loads((r / "summary.json").read_text())["norm"]) for r in runs}
    assert pairs == {(a, n) for a in ("dcgan", "resnet") for n in ("vanilla", "bn", "wn", "sn")}


def test_a_failing_run_does_not_take_the_sweep_or_its_table_down(tmp_path, monkeypatch,
                                                                 capsys):
    """One grid point cannot run (7 px is too small for the DCGAN): the others still train,
    the table lists it as failed, and the sweep exits 1 after the table, with no traceback."""
    out = run_gansweep(monkeypatch, capsys, tmp_path, "-m", "dataset.image_size=7,32", *TINY,
                       code=1)
    assert "Traceback" not in out
    assert "DCGAN needs images of at least 8 px; got 7 px" in out
    # one row per image size: the failed run is not pooled with the one that trained
    assert "| wn | 7 | - | - | - | - | - | - | 1 | failed at 0 (seed 0) |" in out
    assert "| 1 | 1 finished |" in out.split("| wn | 32 |")[1].splitlines()[0]
    assert "1 run(s) of this sweep failed" in out.split("| wn | 32 |")[1]  # after the table
    (failed,) = (tmp_path / "outputs" / "sweeps").rglob("failed.json")
    record = json.loads(failed.read_text())
    assert record["status"] == "failed" and "got 7 px" in record["error"]
    assert "dataset.image_size=7" in failed.parent.name
    (summary,) = (tmp_path / "outputs" / "sweeps").rglob("summary.json")
    assert json.loads(summary.read_text())["status"] == "finished"


def test_only_the_named_noise_is_silenced():
    import warnings

    from gansweep.console import quiet

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet()
        warnings.warn("The `srun` command is available on your system but is not used. HINT")
        warnings.warn("a real warning about the run")
    assert [str(w.message) for w in caught] == ["a real warning about the run"]
