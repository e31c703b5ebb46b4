"""train.restart_on_early_divergence: the paper's restart of runs that fail early."""

from __future__ import annotations

import json

import pytest
from conftest import CrashAt, PoisonGenerator, train_run

from gansweep.job import train
from gansweep.report.table import collect, table_rows
from gansweep.rundir import restarts

pytestmark = pytest.mark.slow
RESTART = ["train.iters=6", "train.restart_on_early_divergence=3"]
SECOND_SEED = restarts.SEED_STRIDE  # attempt 1 of seed 0


def summary_of(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def iters(csv_path):
    return [int(line.split(",")[0]) for line in csv_path.read_text().splitlines()[1:]]


def test_an_early_divergence_starts_over_with_a_new_seed_and_keeps_the_attempt(
        make_cfg, tmp_path, capsys):
    cfg = make_cfg(*RESTART, "wandb.mode=offline")
    run = train_run(cfg, callbacks=[PoisonGenerator(1, seeds=(0,))])  # seed 0 diverges at 2

    summary = summary_of(run)
    assert summary["status"] == "finished" and summary["iters_done"] == 6
    assert summary["seed"] == SECOND_SEED
    assert summary["restarts"] == [{"seed": 0, "diverged_at": 2, "dir": "restarts/0"}]
    out = capsys.readouterr().out
    assert "attempt 0 (seed 0) diverged at iteration 2" in out
    assert f"starting over with seed {SECOND_SEED}" in out

    # the failed attempt is kept whole, apart from the run's current files
    attempt = run / "restarts" / "0"
    assert summary_of(attempt)["status"] == "diverged" and summary_of(attempt)["restarted"]
    assert "seed: 0\n" in (attempt / "config.yaml").read_text()
    assert iters(attempt / "train.csv") == [1, 2]
    assert (attempt / "wandb_id.txt").read_text() != (run / "wandb_id.txt").read_text()
    assert list((attempt / "wandb").glob("offline-run-*"))
    assert f"seed: {SECOND_SEED}\n" in (run / "config.yaml").read_text()
    assert iters(run / "train.csv") == [1, 2, 3, 4, 5, 6]

    # the restart is a fresh run with the new seed, nothing carried over from the attempt
    direct = train_run(make_cfg(*RESTART, f"seed={SECOND_SEED}", f"run_dir={tmp_path}/direct"))
    assert (run / "recon.csv").read_text() == (direct / "recon.csv").read_text()
    assert (run / "train.csv").read_text() == (direct / "train.csv").read_text()
    # the report sees one run, not the attempt as a second one, and says it was restarted
    (only,) = [r for r in collect(tmp_path) if r["dir"].startswith(str(run))]
    _, rows = table_rows([only])
    assert rows[0][-1] == f"1 finished; seed {SECOND_SEED} after 1 early divergence restarted"


def test_a_divergence_after_the_window_is_the_run_s_result(make_cfg):
    run = train_run(make_cfg(*RESTART, "train.iters=8"), callbacks=[PoisonGenerator(3)])
    summary = summary_of(run)
    assert summary["status"] == "diverged" and summary["diverged_at"] == 4
    assert summary["restarts"] == [] and not (run / "restarts").exists()


def test_restarts_stop_after_max_restarts(make_cfg):
    run = train_run(make_cfg(*RESTART, "train.max_restarts=2"), callbacks=[PoisonGenerator(1)])
    summary = summary_of(run)
    assert summary["status"] == "diverged" and summary["diverged_at"] == 2
    assert summary["seed"] == 2 * SECOND_SEED
    assert [a["seed"] for a in summary["restarts"]] == [0, SECOND_SEED]


def test_off_by_default(make_cfg):
    run = train_run(make_cfg("train.iters=6"), callbacks=[PoisonGenerator(1)])
    assert summary_of(run)["status"] == "diverged" and summary_of(run)["restarts"] == []


def test_a_crash_in_a_restarted_attempt_resumes_that_attempt(make_cfg, tmp_path):
    cfg = make_cfg(*RESTART)
    poison = PoisonGenerator(1, seeds=(0,))
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, callbacks=[poison, CrashAt(5)])  # attempt 1 dies after its checkpoint at 3
    run = train_run(cfg, callbacks=[poison])
    assert summary_of(run)["seed"] == SECOND_SEED
    assert len(summary_of(run)["restarts"]) == 1
    direct = train_run(make_cfg(*RESTART, f"seed={SECOND_SEED}", f"run_dir={tmp_path}/direct"))
    assert (run / "recon.csv").read_text() == (direct / "recon.csv").read_text()


def test_a_kill_while_archiving_an_attempt_is_finished_on_the_next_run(
        make_cfg, tmp_path, monkeypatch):
    cfg = make_cfg(*RESTART)
    poison = PoisonGenerator(1, seeds=(0,))
    real_move, moves = restarts._move, []

    def killed_after_two_moves(src, dst):
        if len(moves) == 2:
            raise KeyboardInterrupt  # the process dies half-way through the archive
        moves.append(src)
        real_move(src, dst)

    monkeypatch.setattr(restarts, "_move", killed_after_two_moves)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[poison])
    assert (tmp_path / "run" / "restarts" / "0.partial").is_dir()
    monkeypatch.setattr(restarts, "_move", real_move)

    run = train_run(cfg, callbacks=[poison])
    attempt = run / "restarts" / "0"
    assert summary_of(run)["restarts"] == [{"seed": 0, "diverged_at": 2, "dir": "restarts/0"}]
    assert iters(attempt / "train.csv") == [1, 2] and "seed: 0\n" in \
        (attempt / "config.yaml").read_text()
    direct = train_run(make_cfg(*RESTART, f"seed={SECOND_SEED}", f"run_dir={tmp_path}/direct"))
    assert (run / "recon.csv").read_text() == (direct / "recon.csv").read_text()


def test_restart_settings_are_checked(make_cfg):
    from gansweep.validate import ConfigError, validate

    with pytest.raises(ConfigError, match="train.max_restarts=-1: must be a whole number"):
        validate(make_cfg("train.max_restarts=-1"))
