"""`python -m gansweep.report`: the paper's table and figure from a folder of runs."""

import csv
import json
import math
import statistics
import sys
from pathlib import Path

import pytest
from conftest import TINY, CrashAt
from omegaconf import OmegaConf

from gansweep.job import train
from gansweep.report.table import main


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    from conftest import compose_config

    root = tmp_path_factory.mktemp("report")
    # sample quality on (the default, which the tiny runs turn off), tested at 2, 4 and 6
    quality = ["quality.metrics=[fid,kid]", "recon.every=2"]
    for norm in ("vanilla", "wn"):
        for seed in (0, 1):
            train(compose_config(root, f"norm={norm}", f"seed={seed}", *quality,
                                 f"run_dir={root}/sweep/{norm}-{seed}"))
    with pytest.raises(RuntimeError):  # a third wn seed that never finished
        train(compose_config(root, "norm=wn", "seed=2", *quality, f"run_dir={root}/sweep/wn-2"),
              callbacks=[CrashAt(5)])
    return root / "sweep"


def summaries(sweep, norm):
    return [json.loads(p.read_text()) for p in sorted(sweep.glob(f"{norm}-*/summary.json"))]


def test_table_has_a_row_per_norm_with_mean_std_over_seeds(sweep, tmp_path):
    md = main([str(sweep), "--out", str(tmp_path)])
    with open(tmp_path / "table.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    assert header == ["norm", "best iteration", "running loss", "final loss",
                      "final FID[digits-classifier]", "final KID[digits-classifier]",
                      "rise after best", "worst rise", "diverged", "runs", "status"]
    assert [r[0] for r in rows] == ["vanilla", "wn"]
    vanilla = summaries(sweep, "vanilla")
    final = [s["final_loss"] for s in vanilla]
    assert rows[0][3] == f"{statistics.mean(final):.6f} ± {statistics.stdev(final):.6f}"
    fids = [s["final_fid"] for s in vanilla]
    assert rows[0][4] == f"{statistics.mean(fids):.2f} ± {statistics.stdev(fids):.2f}"
    assert rows[0][9] == "2" and rows[0][10] == "2 finished"
    # the unfinished run is counted and shown, not dropped; only finished runs are averaged
    assert rows[1][9] == "3" and rows[1][8] == "0/2"
    assert rows[1][10] == "2 finished; unfinished at 4 (seed 2)"  # its last recon: iter 4
    wn_final = [s["final_loss"] for s in summaries(sweep, "wn")]
    assert rows[1][3].startswith(f"{statistics.mean(wn_final):.6f} ± ")
    assert md == (tmp_path / "table.md").read_text() and "| vanilla |" in md
    assert r"\begin{tabular}" in (tmp_path / "table.tex").read_text()
    assert (tmp_path / "recon.png").stat().st_size > 10_000


def test_variants_that_differ_in_the_norm_are_compared_with_an_interval(sweep, tmp_path):
    """wn against vanilla, final and running loss, over the finished runs; the unfinished
    third wn seed is counted beside the statistics, not in them."""
    from gansweep.report.effects import finding, relative_effect

    md = main([str(sweep), "--out", str(tmp_path)])
    vanilla, wn = summaries(sweep, "vanilla"), summaries(sweep, "wn")
    for key, metric in (("final_loss", "final loss"), ("running_loss", "running loss")):
        effect = relative_effect([s[key] for s in wn], [s[key] for s in vanilla])
        line = finding("wn", "vanilla", "dcgan, digits", metric, effect)
        assert f"- {line} (1 not finished or failed, left out)" in md
        assert effect.p is not None and (effect.n_a, effect.n_b) == (2, 2)
    with open(tmp_path / "comparisons.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["a"], r["b"], r["metric"], r["n_a"], r["left_out"]) for r in rows] == [
        ("wn", "vanilla", "final loss", "2", "1"), ("wn", "vanilla", "running loss", "2", "1"),
        ("wn", "vanilla", "final FID[digits-classifier]", "2", "1"),
        ("wn", "vanilla", "final KID[digits-classifier]", "2", "1")]
    assert "Welch" in md and "wn vs vanilla" in (tmp_path / "table.tex").read_text()
    # another compared setting: the norm becomes part of what the sides share, and no
    # other setting varies here, so there is nothing to compare
    assert "Variants that differ" not in main([str(sweep), "--out", str(tmp_path / "lr"),
                                               "--compare", "train.lr"])


def test_a_compared_setting_no_run_has_is_one_line_and_a_re_report_keeps_no_stale_file(
        sweep, tmp_path, monkeypatch, capsys):
    """A typo in --compare silently dropped every comparison; a report made again in place
    without comparisons left the earlier comparisons.csv beside its table."""
    from conftest import run_module

    code, said = run_module(monkeypatch, capsys, "gansweep.report", str(sweep), "--out",
                            str(tmp_path), "--compare", "trian.lr")
    assert code == 1 and said.strip() == ("gansweep: --compare trian.lr: no run has that "
                                          "setting; did you mean train.lr?")
    assert not (tmp_path / "table.md").exists()
    main([str(sweep), "--out", str(tmp_path)])
    assert (tmp_path / "comparisons.csv").exists()
    main([str(sweep), "--out", str(tmp_path), "--compare", "train.lr"])  # no pairs to compare
    assert not (tmp_path / "comparisons.csv").exists()


def test_a_single_run_per_variant_shows_plain_values_and_varying_keys(make_cfg, tmp_path):
    for arch in ("dcgan", "resnet"):
        train(make_cfg(f"arch={arch}", f"run_dir={tmp_path}/runs/{arch}"))
    md = main([str(tmp_path / "runs")])
    assert md.splitlines()[0].startswith("| norm | arch | best iteration")
    summary = json.loads((tmp_path / "runs" / "resnet" / "summary.json").read_text())
    assert f"| wn | resnet | {summary['best_iter']} | {summary['running_loss']:.6f} |" in md


@pytest.mark.slow
def test_a_swept_setting_splits_rows_and_seeds_pool(tmp_path, monkeypatch):
    """A real multirun over two learning rates and two seeds: one row per learning rate,
    each pooling its two seeds; nothing of different settings is averaged together."""
    from gansweep.__main__ import main as gansweep

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["gansweep", "-m", "seed=0,1", "train.lr=1e-3,5e-4",
                                      *TINY])
    gansweep()
    (sweep,) = (tmp_path / "outputs" / "sweeps").iterdir()
    with open(sweep / "table.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    assert header[:2] == ["norm", "train.lr"] and "seed" not in header
    assert [(r[0], r[1], r[header.index("runs")]) for r in rows] == [
        ("wn", "0.0005", "2"), ("wn", "0.001", "2")]  # numeric order
    for row in rows:
        finals = [json.loads(p.read_text())["final_loss"] for p in sweep.glob("*/summary.json")
                  if str(OmegaConf.load(p.parent / "config.yaml").train.lr) == row[1]]
        assert len(finals) == 2
        assert row[header.index("final loss")] == \
            f"{statistics.mean(finals):.6f} ± {statistics.stdev(finals):.6f}"


def test_an_empty_folder_is_a_clear_error(tmp_path):
    from gansweep.errors import GansweepError

    with pytest.raises(GansweepError, match="no runs under"):
        main([str(tmp_path)])


@pytest.mark.slow
def test_the_comparison_notebook_runs_on_a_sweep(sweep, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("GANSWEEP_SWEEP", str(sweep))
    nb = nbformat.read(Path(__file__).parents[1] / "notebooks" / "compare_runs.ipynb", 4)
    NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    assert "5 runs" in text
    tables = [o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})]
    assert tables and "| vanilla |" in tables[0] and "| wn |" in tables[0]
    assert "- wn vs vanilla (dcgan, digits): final loss" in tables[1]
    assert "- fid[digits-classifier], over training, all runs: median rho" in tables[2]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 4  # the curves, sample grids, FID beside recon, stability bands
    assert "wn: rise after best" in text and "diverged 0/2" in text


class FakeWandbRun:
    """What `wandb.Api().runs()` yields, for the parts the report reads (no server here)."""

    def __init__(self, summary_path: Path):
        run_dir = summary_path.parent
        self.summary = json.loads(summary_path.read_text())
        self.config = {k: self.summary[k] for k in ("norm", "arch", "dataset", "seed")}
        with open(run_dir / "recon.csv", newline="") as f:
            self._history = [{"trainer/iter": int(r["iter"]), "recon/running": float(r["recon_mse"])}
                             for r in csv.DictReader(f)]
        with open(run_dir / "quality.csv", newline="") as f:  # W&B's quality/<column> rows
            self._history += [{"trainer/iter": int(r.pop("iter")),
                               **{f"quality/{c}": float(v) for c, v in r.items()}}
                              for r in csv.DictReader(f)]
        self.state = "finished"
        self.group = run_dir.parent.name

    def scan_history(self, keys):  # as W&B's: the rows that hold every key
        return [{k: row[k] for k in keys} for row in self._history if set(keys) <= set(row)]


def test_the_table_from_a_wandb_project_matches_the_one_from_files(sweep, tmp_path, monkeypatch):
    import wandb

    runs = [FakeWandbRun(p) for p in sorted(sweep.glob("*/summary.json"))]
    asked = []

    class FakeApi:
        def runs(self, project):
            asked.append(project)
            return runs

    monkeypatch.setattr(wandb, "Api", FakeApi)
    from_wandb = main(["--wandb", "team/gansweep", "--out", str(tmp_path / "wb")])
    from_files = main([str(sweep), "--out", str(tmp_path / "files")])
    assert asked == ["team/gansweep"]
    # the same finished runs give the same rows (the files also know the unfinished one)
    assert from_wandb.splitlines()[2] == from_files.splitlines()[2]  # vanilla
    assert "final FID[digits-classifier]" in from_wandb.splitlines()[0]
    tracked = [line for line in from_files.splitlines() if "over training" in line]
    assert tracked and all(line in from_wandb for line in tracked)
    assert (tmp_path / "wb" / "recon.png").exists()


def test_a_torn_recon_row_is_left_out_by_the_report_as_by_the_resuming_writer(tmp_path):
    from gansweep.rundir import records

    (tmp_path / "recon.csv").write_text("iter,recon_mse\n3,0.5\n6,0.25\n9,0.1")
    with open(tmp_path / "recon.csv", "a") as f:
        f.write("\n12,")  # a kill in the middle of a row
    kept = records.recon_series(tmp_path)
    assert kept == [(3, 0.5), (6, 0.25), (9, 0.1)]
    assert [int(r["iter"]) for r in records.recon_history(tmp_path).read()] == [3, 6, 9]


def write_run(run_dir: Path, norm: str, arch: str, dataset: str, seed: int, loss=None,
              **results):
    """A finished run's record as a run writes it (config.yaml, summary.json), no training;
    without `loss`, as runs older than the loss axis wrote it."""
    run_dir.mkdir(parents=True)
    OmegaConf.save({"norm": {"name": norm}, "arch": {"name": arch},
                    "dataset": {"name": dataset}, "seed": seed,
                    **({"loss": {"name": loss}} if loss else {})}, run_dir / "config.yaml")
    (run_dir / "summary.json").write_text(json.dumps(
        {"status": "finished", "norm": norm, "arch": arch, "dataset": dataset, "seed": seed,
         "iters_done": results["best_iter"], **results}))


def test_rows_of_the_papers_setting_show_its_numbers_and_the_difference(tmp_path):
    from gansweep.report.paper import SOURCE

    runs = tmp_path / "runs"
    for seed, final in ((0, 0.0060), (1, 0.0056)):
        write_run(runs / f"wn-{seed}", "wn", "dcgan", "celeba", seed, best_iter=400_000,
                  running_loss=0.0130, final_loss=final)
    write_run(runs / "bn", "bn", "dcgan", "celeba", 0, best_iter=20_000,
              running_loss=0.0180, final_loss=0.0070)
    write_run(runs / "resnet", "wn", "resnet", "celeba", 0, best_iter=1_000,
              running_loss=0.02, final_loss=0.01)  # a setting the paper has no table for
    md = main([str(runs)])
    assert f"Beside the paper (ours vs theirs: {SOURCE}):" in md
    assert ("- bn / dcgan (dcgan, celeba): best iteration 20,000 vs 30,500 (-34.4%); "
            "running loss 0.018000 vs 0.017199 (+4.7%); final loss 0.007000 vs 0.006355 "
            "(+10.1%)") in md
    assert (f"- wn / dcgan (dcgan, celeba): best iteration 400,000 vs 463,000 (-13.6%); "
            f"running loss 0.013000 vs 0.013010 (-0.1%); final loss 0.005800 vs 0.005524 "
            f"({0.0058 / 0.005524 - 1:+.1%})") in md
    assert "wn / resnet (resnet" not in md
    assert "Beside the paper" not in main([str(runs / "resnet")])
    # the paper trained with its loss and no penalty: a hinge run is not its setting
    write_run(tmp_path / "hinge" / "wn", "wn", "dcgan", "celeba", 0, loss="hinge",
              best_iter=400_000, running_loss=0.0130, final_loss=0.006)
    assert "Beside the paper" not in main([str(tmp_path / "hinge")])


def test_a_result_column_is_one_definition(tmp_path, monkeypatch):
    """A new `records.Result` (here the final test's iteration, which every summary holds)
    is a column of the table, beside the paper's row where the paper has no such number, in
    the W&B Report's runs table; a compared one is in the comparisons and may be the
    objective."""
    from gansweep.report import dashboard
    from gansweep.report.table import collect, comparisons
    from gansweep.rundir import records

    extra = records.Result("final_iter", "final test's iteration", "{:,.0f}", compared=9)
    monkeypatch.setattr(records, "RESULT_COLUMNS", (*records.RESULT_COLUMNS, extra))
    runs = tmp_path / "runs"
    for norm, seed, at in (("wn", 0, 400_000), ("wn", 1, 420_000), ("bn", 0, 20_000),
                           ("bn", 1, 22_000)):
        write_run(runs / f"{norm}-{seed}", norm, "dcgan", "celeba", seed, best_iter=at,
                  running_loss=0.013, final_loss=0.006 + seed / 1000, final_iter=at)
    md = main([str(runs), "--out", str(tmp_path / "out")])
    with open(tmp_path / "out" / "table.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    column = header.index("final test's iteration")
    assert [row[column] for row in rows] == ["21,000 ± 1,414", "410,000 ± 14,142"]
    beside = [line for line in md.splitlines() if line.startswith(("- wn (", "- bn ("))]
    assert len(beside) == 2 and all("final loss" in line for line in beside)
    assert not any("final test's iteration" in line for line in beside)  # not the paper's
    assert "final test's iteration" in {c["metric"] for c in comparisons(collect(runs))}
    assert [r.key for r in records.compared_results()][-1] == "final_iter"
    assert "summary:final_iter" in dashboard.pinned_columns("norm", [])


def test_long_setting_values_are_shown_rounded_and_rows_stay_apart():
    """Two Optuna trials' learning rates that agree to 4 digits: two rows (grouped by the
    exact value), each shown to 4 significant digits in markdown and LaTeX, whole in CSV."""
    from gansweep.report.table import latex, markdown, shown

    header = ["norm", "train.lr", "best iteration", "final loss"]
    rows = [["wn", "0.00019578897201212982", "600", "0.003520"],
            ["wn", "0.00019581234567891234", "600", "1.234567"],
            ["wn", "7.035737028722141e-05", "1,500", "0.004 ± 0.001"]]
    md = markdown(header, rows)
    assert "| wn | 0.0001958 | 600 | 0.003520 |" in md
    assert "| wn | 0.0001958 | 600 | 1.234567 |" in md  # two rows, as grouped
    assert "| wn | 7.036e-05 | 1,500 | 0.004 ± 0.001 |" in md
    assert "0.0001958 &" in latex(header, rows)
    for cell in ("600", "0.0005", "5e-4", "nan", "1.234567", "dcgan", "-0.012345"):
        assert shown(cell) == cell


def write_quality(run_dir: Path, features: str, rows: list[tuple[int, float, float]]):
    """quality.csv as SampleQuality writes it (its columns named with the features)."""
    with open(run_dir / "quality.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["iter", f"fid[{features}]", f"kid[{features}]",
                         f"kid_std[{features}]"])
        writer.writerows([(i, fid, kid, 0.01) for i, fid, kid in rows])


def test_sample_quality_is_in_the_table_the_comparisons_and_the_tracking(tmp_path):
    """Runs that measured FID/KID: a column per metric named with the features' network,
    FID compared as a ratio and KID (which may be below 0) as a difference, and the third
    question's answer in table.md and tracking.csv."""
    from scipy import stats

    runs = tmp_path / "runs"
    finals = {("bn", 0): (0.010, 30.0, 0.20), ("bn", 1): (0.012, 36.0, 0.25),
              ("bn", 2): (0.011, 33.0, 0.10), ("wn", 0): (0.007, 21.0, -0.01),
              ("wn", 1): (0.008, 24.0, 0.02), ("wn", 2): (0.006, 20.0, 0.01)}
    for (norm, seed), (loss, fid, kid) in finals.items():
        run_dir = runs / f"{norm}-{seed}"
        write_run(run_dir, norm, "dcgan", "digits", seed, best_iter=500, running_loss=loss,
                  final_loss=loss, final_fid=fid, final_kid=kid,
                  quality_features="digits-classifier")
        (run_dir / "recon.csv").write_text("iter,recon_mse\n250,0.05\n500,0.02\n750,0.03\n")
        write_quality(run_dir, "digits-classifier", [(250, 90, 1.0), (500, fid, kid),
                                                     (750, 60, 0.5)])
    md = main([str(runs), "--out", str(tmp_path / "out")])
    out = tmp_path / "out"
    with open(out / "table.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    fid = header.index("final FID[digits-classifier]")
    kid = header.index("final KID[digits-classifier]")
    assert [row[fid] for row in rows] == ["33.00 ± 3.00", "21.67 ± 2.08"]
    assert rows[1][kid] == "0.0067 ± 0.0153"
    assert "final FID[digits-classifier]" in (out / "table.tex").read_text()
    with open(out / "comparisons.csv", newline="") as f:
        found = {c["metric"]: c for c in csv.DictReader(f)}
    a = [finals["wn", s][1] for s in range(3)]
    b = [finals["bn", s][1] for s in range(3)]
    geomean = lambda xs: math.exp(sum(map(math.log, xs)) / len(xs))  # noqa: E731
    ratio = found["final FID[digits-classifier]"]
    assert float(ratio["estimate"]) == pytest.approx(geomean(a) / geomean(b) - 1)
    assert ratio["difference"] == "relative"
    kids = found["final KID[digits-classifier]"]
    a = [finals["wn", s][2] for s in range(3)]
    b = [finals["bn", s][2] for s in range(3)]
    assert kids["difference"] == "absolute"
    assert float(kids["estimate"]) == pytest.approx(sum(a) / 3 - sum(b) / 3)
    # the conservative df = 2 of the effects, on the values: Welch's t with df = 2
    t = stats.ttest_ind(a, b, equal_var=False).statistic
    assert float(kids["p"]) == pytest.approx(2 * stats.t.sf(abs(t), 2))
    assert "wn vs bn (dcgan, digits): final KID[digits-classifier] -0.17" in md
    # the third question: over training, recon falls then rises as FID does -> rho +1 each
    assert ("- fid[digits-classifier], over training, all runs: median rho +1.00 (range "
            "+1.00 to +1.00), n = 6 runs") in md
    with open(out / "tracking.csv", newline="") as f:
        tracked = list(csv.DictReader(f))
    end = next(r for r in tracked if r["metric"] == "fid[digits-classifier]"
               and r["view"] == "across runs at the end")
    losses = [v[0] for v in finals.values()]
    fids = [v[1] for v in finals.values()]
    assert float(end["rho"]) == pytest.approx(stats.spearmanr(losses, fids).statistic)
    assert int(end["n"]) == 6 and 0 < float(end["p"]) < 0.05


def test_columns_of_two_feature_networks_stay_apart(tmp_path):
    """FID in a classifier's features and in Inception's are different units: two columns,
    each run's value in its own network's, never a mean over both."""
    runs = tmp_path / "runs"
    for seed, features, fid in ((0, "digits-classifier", 3.0), (1, "inception", 150.0)):
        write_run(runs / f"wn-{seed}", "wn", "dcgan", "digits", seed, best_iter=500,
                  running_loss=0.01, final_loss=0.01, final_fid=fid, final_kid=0.1,
                  quality_features=features)
    main([str(runs), "--out", str(tmp_path / "out")])
    with open(tmp_path / "out" / "table.csv", newline="") as f:
        header, row = list(csv.reader(f))
    assert row[header.index("final FID[digits-classifier]")] == "3.00"
    assert row[header.index("final FID[inception]")] == "150.00"
