"""`python -m gansweep.report ... --wandb-report ENTITY/PROJECT`: a W&B Report built from a
real sweep's offline runs (gansweep/report/dashboard.py), checked against what W&B wrote on disk.
Saving to a W&B server cannot be tested here: --dry-run writes what saving would send, which
the tests read back through wandb-workspaces' own models and filter parser."""

import json
import subprocess
import sys

import pytest
from conftest import TINY, run_module
from wandb_files import offline_runs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Two norms x two seeds, W&B offline (the default mode) and sample quality on (the
    default), as a user runs it."""
    root = tmp_path_factory.mktemp("dashboard")
    short = [o for o in TINY if o not in ("wandb.mode=disabled", "quality.metrics=[]")]
    done = subprocess.run([sys.executable, "-m", "gansweep", "-m", "norm=vanilla,wn",
                           "seed=0,1", *short], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    (sweep,) = (root / "outputs" / "sweeps").iterdir()
    return sweep


def build(monkeypatch, capsys, sweep, out, *args):
    """The dry run's viewspec, read back as W&B would read the saved report."""
    from wandb_workspaces.reports.v2 import interface, internal

    code, said = run_module(monkeypatch, capsys, "gansweep.report", str(sweep), "--out",
                            str(out), "--wandb-report", "my-team/gansweep", "--dry-run", *args)
    assert code == 0, said
    assert f"as W&B would save it: {out / 'wandb_report.json'}" in said
    saved = json.loads((out / "wandb_report.json").read_text())
    return saved, interface.Report._from_model(internal.ReportViewspec.model_validate(saved))


def of_type(report, kind):
    return [b for b in report.blocks if type(b).__name__ == kind]


def test_the_report_shows_the_sweeps_runs_grouped_by_norm(sweep, tmp_path, monkeypatch,
                                                          capsys):
    from wandb_workspaces import expr

    saved, report = build(monkeypatch, capsys, sweep, tmp_path)
    wandb_runs = offline_runs(sweep)
    assert len(wandb_runs) == 4
    assert (report.entity, report.project) == ("my-team", "gansweep")
    # the table and comparisons, as the report printed them
    (text,) = of_type(report, "MarkdownBlock")
    assert text.text == (tmp_path / "table.md").read_text() and "wn vs vanilla" in text.text
    (grid,) = of_type(report, "PanelGrid")
    (runset,) = grid.runsets
    # the runs of this sweep: its W&B group, as the offline runs recorded it (a name with
    # '=' in it, which W&B's filter grammar would have turned into '==')
    (group,) = {wb.run.run_group for wb in wandb_runs}
    assert "=" not in group and group == sweep.name.replace("=", ":")
    (saved_grid,) = [b for b in saved["spec"]["blocks"] if b["type"] == "panel-grid"]
    (saved_runset,) = saved_grid["metadata"]["runSets"]
    (selected,) = saved_runset["filters"]["filters"]
    assert (selected["key"], selected["op"], selected["value"]) == (
        {"section": "run", "name": "group"}, "=", group)
    assert expr.expr_to_filters(runset.filters).value == group
    assert saved_runset["project"] == {"name": "gansweep", "entityName": "my-team",
                                       "id": "unknown until saved"}
    # grouped by a config key the runs have, with each value the runs logged
    assert runset.groupby == ["config.norm.value"]
    assert {wb.config["norm"] for wb in wandb_runs} == {"vanilla", "wn"}
    # the runs table: each run's results, keys the runs' summaries hold
    summary_keys = [c.split(":", 1)[1] for c in runset.pinned_columns
                    if c.startswith("summary:")]
    assert summary_keys == ["best_iter", "running_loss", "final_loss", "final_fid",
                            "final_kid", "quality_features", "status"]
    assert all(k in wb.summary for wb in wandb_runs for k in summary_keys)
    assert {wb.summary["quality_features"] for wb in wandb_runs} == {"digits-classifier"}
    line = next(p for p in grid.panels if type(p).__name__ == "LinePlot")
    assert (line.x.name, [y.name for y in line.y]) == ("trainer/iter", ["recon/running"])
    assert line.groupby.name == "norm"
    assert (line.groupby_aggfunc, line.groupby_rangefunc) == ("mean", "minmax")
    assert all(wb.series("recon/running") for wb in wandb_runs)  # the x and y it plots
    quality = [p for p in grid.panels if type(p).__name__ == "LinePlot"][1:]
    keys = [y.name for p in quality for y in p.y]
    assert keys == ["quality/fid[digits-classifier]", "quality/kid[digits-classifier]"]
    assert all(p.groupby.name == "norm" and p.x.name == "trainer/iter" for p in quality)
    assert all(wb.series(k) for wb in wandb_runs for k in keys)  # what the runs logged
    media = next(p for p in grid.panels if type(p).__name__ == "MediaBrowser")
    assert media.media_keys == ["samples"]
    assert all(any("samples/_type" in row for row in wb.history) for wb in wandb_runs)


def test_another_compared_setting_groups_by_its_flat_config_key(sweep, tmp_path,
                                                                monkeypatch, capsys):
    _, report = build(monkeypatch, capsys, sweep, tmp_path, "--compare", "train.lr")
    (grid,) = of_type(report, "PanelGrid")
    assert grid.runsets[0].groupby == ["config.train.lr.value"]
    assert "config:train.lr.value" in grid.runsets[0].pinned_columns
    assert all("train.lr" in wb.config for wb in offline_runs(sweep))


def test_saving_without_wandb_online_is_one_line(sweep, tmp_path, monkeypatch, capsys):
    import wandb

    monkeypatch.setenv("WANDB_API_KEY", "")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    try:
        code, said = run_module(monkeypatch, capsys, "gansweep.report", str(sweep), "--out",
                                str(tmp_path), "--wandb-report", "my-team/gansweep")
    finally:
        # W&B keeps its settings (this server, no key) in a process-wide singleton, which
        # later runs in this process would otherwise inherit and try to log in with
        wandb.teardown()
    assert code == 1 and "Traceback" not in said
    assert "could not save the W&B Report to my-team/gansweep" in said and "--dry-run" in said


@pytest.mark.parametrize("args, message", [
    (["--wandb-report", "gansweep"], "give ENTITY/PROJECT"),
    (["--dry-run"], "--dry-run goes with --wandb-report"),
])
def test_bad_report_options_are_one_line(sweep, monkeypatch, capsys, args, message):
    code, said = run_module(monkeypatch, capsys, "gansweep.report", str(sweep), *args)
    assert code == 2 and message in said
