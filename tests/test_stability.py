"""How far a run's running loss rose after its best (gansweep/report/stability.py), and the table's
stability columns from real runs' recon.csv."""

import shutil

import pytest

from gansweep.report.stability import run_stability, up_to_divergence, variant_stability
from gansweep.report.table import main
from gansweep.rundir import records


def test_a_runs_rise_is_measured_from_its_first_lowest_test():
    series = [(0, 1.0), (10, 0.5), (20, 0.8), (30, 0.6), (40, 0.5)]
    s = run_stability(series)
    assert (s.best_iter, s.best) == (10, 0.5)  # the first of two equal lows
    assert s.rise == pytest.approx(0.5 / 0.5 - 1) and s.worst_rise == pytest.approx(0.6)
    falling = run_stability([(0, 1.0), (10, 0.7), (20, 0.4)])
    assert (falling.best_iter, falling.rise, falling.worst_rise) == (20, 0.0, 0.0)
    assert run_stability([]) is None


def run(status, series):
    return {"status": status, "series": series}


def test_a_variant_pools_its_ended_runs_and_counts_its_divergences():
    runs = [run("finished", [(0, 1.0), (10, 0.5), (20, 0.6)]),       # +20%
            run("finished", [(0, 1.0), (10, 0.5), (20, 0.55)]),      # +10%
            run("diverged", [(0, 1.0), (10, 0.4), (20, 0.8)]),       # +100% before diverging
            run("unfinished", [(0, 1.0), (10, 2.0)]),                # not ended: not in it
            run("failed", [])]
    v = variant_stability(runs)
    assert v.rises == pytest.approx([0.2, 0.1, 1.0])
    assert v.worst_rise == pytest.approx(1.0) and (v.diverged, v.ended) == (1, 3)
    assert v.cells() == ["+43.3% ± 49.3%", "+100.0%", "1/3"]
    assert variant_stability([run("failed", [])]).cells() == ["-", "-", "-"]


def test_the_table_reads_each_runs_rise_from_its_recon_csv(tmp_path):
    from conftest import compose_config

    from gansweep.job import train

    for seed in (0, 1):
        train(compose_config(tmp_path, f"seed={seed}", "train.iters=9",
                             f"run_dir={tmp_path}/sweep/wn-{seed}"))
    rises = []
    for seed in (0, 1):
        series = records.recon_series(tmp_path / "sweep" / f"wn-{seed}")
        assert [i for i, _ in series] == [3, 6, 9]
        rises.append(run_stability(series))
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "sweep", copy)
    # the same runs, but seed 1's loss rises to twice its best at a later test
    with open(copy / "wn-1" / records.RECON_CSV, "a") as f:
        f.write(f"12,{2 * rises[1].best}\n")
    main([str(copy), "--out", str(tmp_path / "out")])
    row = next(line for line in (tmp_path / "out" / "table.md").read_text().splitlines()
               if line.startswith("| wn |"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    header = ["norm", "best iteration", "running loss", "final loss", "rise after best",
              "worst rise", "diverged", "runs", "status"]
    by_name = dict(zip(header, cells))
    assert by_name["worst rise"] == "+100.0%" and by_name["diverged"] == "0/2"
    assert by_name["rise after best"] == variant_stability(
        [run("finished", records.recon_series(copy / f"wn-{s}")) for s in (0, 1)]).cells()[0]


def test_a_diverged_runs_series_is_read_up_to_its_divergence():
    series = [(0, 1.0), (10, 0.5), (20, 0.6), (30, float("nan")), (40, 0.1)]
    assert up_to_divergence(series) == series[:3]
    assert up_to_divergence([(0, float("inf"))]) == []
    assert up_to_divergence(series[:3]) == series[:3]


@pytest.mark.slow
def test_a_sweep_whose_running_test_turned_non_finite_still_gets_its_table(tmp_path):
    """A run whose G diverged writes its last running test as NaN or inf (callbacks.py);
    the report reads its series up to there and prints every column."""
    from conftest import compose_config

    from gansweep.job import train

    for seed in (0, 1):
        train(compose_config(tmp_path, f"seed={seed}", "train.iters=6",
                             f"run_dir={tmp_path}/sweep/wn-{seed}"))
    series = [records.recon_series(tmp_path / "sweep" / f"wn-{s}") for s in (0, 1)]
    rise = variant_stability([run("finished", s) for s in series]).cells()[0]
    for bad in ("nan", "inf", "-inf"):
        sweep = tmp_path / bad
        shutil.copytree(tmp_path / "sweep", sweep)
        with open(sweep / "wn-1" / records.RECON_CSV, "a") as f:
            f.write(f"9,{bad}\n")
        md = main([str(sweep)])
        row = next(line for line in md.splitlines() if line.startswith("| wn |"))
        assert "nan" not in row.lower() and "inf" not in row.lower()
        assert [c.strip() for c in row.split("|")[1:-1]][4] == rise
