"""What a job returns to Hydra's sweepers (gansweep/objective.py), and a learning-rate study
with the real Optuna sweeper plugin (conf/experiment/lr_study.yaml)."""

import json
import math

import pytest
import yaml
from conftest import TINY, run_gansweep

from gansweep.objective import job_objective, run_objective
from gansweep.rundir import records


def write(run_dir, status, **results):
    """A run directory whose summary.json has `status` and `results`."""
    run_dir.mkdir(parents=True)
    records.write_summary(run_dir, {"status": status, "norm": "wn", "arch": "dcgan",
                                    "dataset": "digits", "seed": 0, **results})
    return run_dir


def test_a_finished_run_returns_the_chosen_result(tmp_path):
    run = write(tmp_path / "a", "finished", final_loss=0.25, running_loss=0.5)
    assert run_objective(run, "final_loss") == 0.25
    assert run_objective(run, "running_loss") == 0.5


@pytest.mark.parametrize("status, results", [
    ("diverged", {"final_loss": 0.25}),  # its losses are results, but not a setting to pick
    ("finished", {"final_loss": None}),  # no best checkpoint to test
    ("failed", {}),
])
def test_a_run_without_a_finished_value_is_a_failed_trial(tmp_path, status, results):
    assert run_objective(write(tmp_path / "a", status, **results), "final_loss") is None


def test_a_run_that_never_wrote_a_summary_is_a_failed_trial(tmp_path):
    assert run_objective(tmp_path / "never-made", "final_loss") is None


def test_a_packed_job_returns_the_mean_over_its_seeds_or_none_if_one_failed(tmp_path):
    seeds = [write(tmp_path / str(s), "finished", final_loss=v)
             for s, v in enumerate([0.1, 0.2, 0.6])]
    assert job_objective(seeds, "final_loss") == pytest.approx(0.3)
    seeds.append(write(tmp_path / "3", "diverged", final_loss=0.01))
    assert job_objective(seeds, "final_loss") is None


def test_a_damaged_summary_is_a_failed_trial_not_a_crash(tmp_path):
    run = tmp_path / "a"
    run.mkdir()
    (run / records.SUMMARY).write_text("{torn")
    assert run_objective(run, "final_loss") is None


def test_an_unknown_objective_is_one_line(tmp_path, monkeypatch, capsys):
    out = run_gansweep(monkeypatch, capsys, tmp_path, "objective=fid", *TINY, code=1)
    assert "objective" in out and "final_loss, running_loss" in out and "Traceback" not in out


@pytest.mark.slow
def test_an_optuna_learning_rate_study_runs_end_to_end(tmp_path, monkeypatch, capsys):
    """The shipped study with the real plugin, 4 tiny trials: image size 7 cannot train (a
    failed trial, which does not end the study), 32 can. Optuna's best value is the best
    finished run's final loss; the same command again skips every run and finds the same."""
    study = ["-m", "+experiment=lr_study", "hydra.sweeper.n_trials=4",
             "train.lr=tag(log, interval(1e-4, 1e-2))", "dataset.image_size=choice(7,32)",
             *TINY]
    out = run_gansweep(monkeypatch, capsys, tmp_path, *study, code=1)  # a run failed
    (sweep,) = (tmp_path / "outputs" / "sweeps").iterdir()
    summaries = [json.loads(p.read_text()) for p in sweep.rglob(records.SUMMARY)]
    failed = list(sweep.rglob(records.FAILED))
    assert summaries and failed, "seed 0 of the sampler no longer draws both sizes"
    assert len(summaries) + len(failed) == 4
    assert out.count("Failed experiment") == len(failed)  # Optuna's failed trials
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    best = min(s["final_loss"] for s in summaries)
    assert math.isclose(result["best_value"], best)
    assert result["best_params"]["dataset.image_size"] == 32
    assert "| train.lr |" in (sweep / "table.md").read_text().splitlines()[0]

    again = run_gansweep(monkeypatch, capsys, tmp_path, *study, code=1)
    assert again.count("run already finished") == len(summaries)
    assert math.isclose(yaml.safe_load((sweep / "optimization_results.yaml").read_text())
                        ["best_value"], best)


@pytest.mark.slow
def test_a_study_in_which_no_trial_completes_ends_in_one_line_after_its_table(
        tmp_path, monkeypatch, capsys):
    """Optuna raises ValueError for the best trial of a study without a completed one: the
    command ended in its traceback and no table."""
    import optuna

    # Optuna's console handler holds the stderr of the first test that imported Optuna,
    # which pytest has closed since (a user's process has one stderr): without it, Optuna's
    # lines go to the root logger's handlers, which Hydra sets up for each command
    optuna.logging.disable_default_handler()
    out = run_gansweep(monkeypatch, capsys, tmp_path, "-m", "+experiment=lr_study",
                       "hydra.sweeper.n_trials=2", "dataset.image_size=7", *TINY, code=1)
    assert "Traceback" not in out and "| norm |" in out
    assert "gansweep: no trial of the study 'lr-wn-dcgan-digits' completed" in out
    (sweep,) = (tmp_path / "outputs" / "sweeps").iterdir()
    assert len(list(sweep.rglob(records.FAILED))) == 2
