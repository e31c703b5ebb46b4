"""launch/gpu_check.sh, the one call a lent GPU gets: its dry run on this CPU runs every step
through the same code at tiny sizes, so the script cannot rot between GPUs."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gansweep.benchmark import gpu_check

REPO = Path(__file__).resolve().parents[1]


def test_the_limits_add_up_to_the_eight_minutes_a_lent_gpu_gives_the_check():
    total = (2 * gpu_check.INSTALL_LIMIT_S + gpu_check.PROBE_LIMIT_S
             + sum(step.limit_s for step in gpu_check.STEPS))
    assert total <= gpu_check.BUDGET_S == 8 * 60
    # what the issue asks of it: each norm eager and with CUDA graphs, K up to 16
    names = [step.name for step in gpu_check.STEPS]
    assert names[:4] == ["tests", "train wn", "train vanilla", "train bn"]
    train = [step for step in gpu_check.STEPS if step.kind == "train"]
    assert all("reduce-overhead" in step.gpu and "dcgan64" in step.gpu for step in train)
    packed = next(step for step in gpu_check.STEPS if step.kind == "packed")
    assert packed.gpu[packed.gpu.index("--copies") + 1:] == ("1", "2", "4", "8", "16")


def test_a_step_past_its_limit_is_killed_with_what_it_started(tmp_path):
    child = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {child}; wait"
    start = time.perf_counter()
    with open(tmp_path / "log", "w") as log:
        status, seconds = gpu_check.run_limited(["bash", "-c", script], 3, log, tmp_path)
    assert status == "timed out" and 3 <= seconds < 15
    assert time.perf_counter() - start < 15
    pid = int(child.read_text())
    deadline = time.perf_counter() + 5  # SIGKILL lands when the process is next scheduled
    while running(pid) and time.perf_counter() < deadline:
        time.sleep(0.05)
    assert not running(pid)  # the grandchild went with it
    with open(tmp_path / "log", "w") as log:
        assert gpu_check.run_limited(["false"], 5, log, tmp_path)[0] == "failed"


def running(pid: int) -> bool:
    """Whether `pid` runs (a killed process's zombie, unreaped in a container, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def gpu_train_row(norm: str) -> dict:
    """A train benchmark row as a GPU gives it: syncs and busy shares counted."""
    return {"setting": "dcgan64", "norm": norm, "penalty": "none", "hand_s": 0.004,
            "gansweep_s": 0.005, "ratio": 1.25, "hand_ops": 300, "gansweep_ops": 302,
            "hand_kernels": 280, "gansweep_kernels": 290, "hand_busy": 0.31,
            "gansweep_busy": 0.25, "syncs_per_iter": 0.1, "compiled_s": 0.002,
            "compiled_ratio": 0.5, "compile_s": 41.0, "compiled_kernels": 6,
            "compiled_busy": 0.62}


def test_a_gpus_figures_go_into_one_table_with_every_step_and_its_status():
    report = {
        "dry_run": False, "started": "2026-12-07 15:00 UTC", "seconds": 470.0,
        "install": {"status": "ok", "seconds": 9.0, "installed": ["hydra_core", "wandb"],
                    "limit_s": 40},
        "environment": {"device": "NVIDIA H100 80GB HBM3", "torch": "2.11.0",
                        "unmet_requirements": []},
        "steps": [
            {"name": "tests", "kind": "tests", "status": "failed", "seconds": 80.0,
             "limit_s": 100, "figures": {"tests": 7, "failures": 1, "errors": 0, "skipped": 0,
                                         "passed": 6, "failed_tests": ["test_x"]}},
            {"name": "train wn", "kind": "train", "status": "ok", "seconds": 70.0,
             "limit_s": 75, "figures": [gpu_train_row("wn")]},
            {"name": "train bn", "kind": "train", "status": "timed out", "seconds": 75.0,
             "limit_s": 75, "figures": None, "last_line": "compiling | waiting"},
        ]}
    table = gpu_check.markdown(report).splitlines()
    assert table[0].startswith("GPU check on NVIDIA H100 80GB HBM3, torch 2.11.0")
    assert table[2:4] == ["| step | status | seconds (limit) | figures |", "|---|---|---|---|"]
    install, tests, wn, bn = table[4:]
    assert install.startswith("| install | ok | 9 (40) | from the wheels: hydra_core, wandb;")
    assert tests.startswith("| tests | failed | 80 (100) | 6 passed, 1 failed, 0 skipped; "
                            "failed: test_x |")
    for figure in ("eager 5.0 ms/it (1.25x the hand loop's 4.0 ms)", "290 kernels/it",
                   "GPU busy 25% (hand 31%)", "0.10 syncs/it", ("reduce-overhead 2.0 ms/it "
                   "(0.40x eager), 6 launches/it, GPU busy 62%, first iteration 41 s")):
        assert figure in wn
    assert bn == "| train bn | timed out | 75 (75) | - (last said: compiling / waiting) |"


def test_tests_stopped_at_their_limit_still_count_those_that_ended(tmp_path):
    said = ["tests/test_gpu.py::test_a PASSED                  [ 14%]",
            "tests/test_gpu.py::test_b[vanilla] FAILED         [ 28%]",
            "tests/test_gpu.py::test_c SKIPPED (needs a CUDA GPU) [ 42%]",
            "tests/test_gpu.py::test_d "]  # running when the step was killed
    figures = gpu_check.read_figures("tests", tmp_path / "no-report.xml", said)
    assert (figures["passed"], figures["failures"], figures["skipped"]) == (1, 1, 1)
    assert figures["failed_tests"] == ["test_b[vanilla]"] and figures["partial"]
    assert gpu_check.summarise("tests", figures) == \
        "1 passed, 1 failed, 1 skipped before it was stopped; failed: test_b[vanilla]"
    assert gpu_check.read_figures("tests", tmp_path / "no-report.xml", ["collecting"]) is None


def test_without_its_wheels_the_install_says_where_to_get_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(gpu_check.NEEDED, "no_such_module_here", "no-such-dist")
    (tmp_path / "site").mkdir()
    with open(tmp_path / "log", "w") as log:
        done = gpu_check.install(REPO, tmp_path / "no-wheels", tmp_path / "site", log)
    assert done["status"] == "failed" and done["missing"] == ["no-such-dist"]
    said = capsys.readouterr().err.strip().splitlines()
    assert said == [(f"gpu_check: this Python lacks no-such-dist and {tmp_path / 'no-wheels'} "
                    f"holds no wheels: download them with the command at the top of "
                    f"launch/gpu_check.sh")]
    assert (tmp_path / "site" / "gansweep" / "conf" / "config.yaml").is_file()  # still built


def test_the_script_refuses_to_run_away_from_the_repositorys_root(tmp_path):
    done = subprocess.run(["bash", str(REPO / "launch" / "gpu_check.sh"), str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        ("gpu_check.sh: run it from the repository's root (the folder with launch/ and "
        "gansweep/): cd there first")]


@pytest.mark.slow
def test_a_step_over_its_limit_is_recorded_and_the_next_still_runs(tmp_path):
    evaluator = next(step for step in gpu_check.STEPS if step.kind == "recon")
    # a benchmark's process cannot even import torch in a tenth of a second
    hurried = gpu_check.Step("hurried", "recon", evaluator.gpu, evaluator.dry, limit_s=0.1)
    wrong = gpu_check.Step("wrong", "recon", (), ("recon", "--norm", "nope"), limit_s=30)
    with open(tmp_path / "steps.log", "a") as log:
        first, failed = (gpu_check.run_step(step, True, REPO, tmp_path, dict(os.environ), log)
                         for step in (hurried, wrong))
    assert (first["status"], first["figures"]) == ("timed out", None)
    # the next step ran, to its own end: why it failed is in the table
    assert (failed["status"], failed["figures"]) == ("failed", None)
    assert "argument --norm: invalid choice: 'nope'" in failed["last_line"]
    said = (tmp_path / "steps.log").read_text()
    assert "== hurried: timed out in " in said and "== wrong: failed in " in said


@pytest.mark.slow
def test_the_dry_run_runs_every_step_through_the_installed_gansweep(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(["bash", "launch/gpu_check.sh", "--dry-run", str(out)], cwd=REPO,
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["dry_run"] and report["install"]["status"] == "ok"
    # the steps ran the copy the script installed, not the tree
    assert not report["environment"]["gansweep_from"].startswith(str(REPO))
    assert report["environment"]["unmet_requirements"] == []
    assert [step["name"] for step in report["steps"]] == [s.name for s in gpu_check.STEPS]
    for step in report["steps"]:
        assert step["status"] == "ok" and step["figures"], step["name"]
        assert step["seconds"] <= step["limit_s"]
    by_name = {step["name"]: step["figures"] for step in report["steps"]}
    assert by_name["tests"]["skipped"] == by_name["tests"]["tests"] > 0  # no CUDA here
    (wn,) = by_name["train wn"]
    assert wn["compiled_s"] > 0 and wn["compiled_kernels"] > 0  # the compiled path ran
    assert [r["copies"] for r in by_name["packed"]] == [1, 2]
    assert set(by_name["sample quality"]["per_metric_s"]) == {"fid", "kid"}
    table = (out / "gpu_check.md").read_text()
    assert done.stdout.endswith(table)  # printed last
    assert len(table.splitlines()) == 4 + 1 + len(gpu_check.STEPS)
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json", "gpu_check.md",
                                                     "steps.log"]
