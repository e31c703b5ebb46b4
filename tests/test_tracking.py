"""Does the reconstruction error track sample quality (gansweep/report/tracking.py): the
rank correlation against scipy, its p-value against a hand enumeration and by its error
rate, and the answer's lines on runs."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from gansweep.report.tracking import (
    RESAMPLES,
    association,
    over_training,
    rank_correlation,
    tracking,
    tracking_markdown,
)


@pytest.mark.parametrize("n, ties", [(5, False), (12, False), (9, True)])
def test_the_rank_correlation_is_scipys_spearman(n, ties):
    rng = np.random.default_rng(n)
    x, y = rng.standard_normal((2, n))
    if ties:  # shared ranks, which spearmanr gives their mean rank
        x, y = np.round(x), np.round(y)
    assert rank_correlation(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    # vectorised: each row its own pair
    xs, ys = rng.standard_normal((2, 4, n))
    assert rank_correlation(xs, ys) == pytest.approx(
        [stats.spearmanr(a, b).statistic for a, b in zip(xs, ys)])


def test_the_p_value_is_the_exact_permutation_tests_below_eight_runs():
    """Up to 7 runs the p-value enumerates every pairing: checked against a hand
    enumeration of the two-sided p-value (twice the smaller tail, at most 1)."""
    x = [0.011, 0.013, 0.009, 0.016, 0.012, 0.010]
    y = [41.0, 47.5, 44.0, 52.0, 40.0, 39.0]
    observed = stats.spearmanr(x, y).statistic
    rhos = np.array([stats.spearmanr(x, [y[i] for i in order]).statistic
                     for order in itertools.permutations(range(len(y)))])
    tol = 1e-12  # equal correlations compare equal despite rounding
    expected = min(1.0, 2 * min((rhos >= observed - tol).mean(), (rhos <= observed + tol).mean()))
    found = association(x, y)
    assert found.n == 6 and found.rho == pytest.approx(observed)
    assert found.p == pytest.approx(expected)
    assert association(x, y).p == found.p  # seeded: the same every time
    assert math.factorial(7) <= RESAMPLES < math.factorial(8)


def test_without_spread_or_with_two_runs_there_is_no_association():
    assert association([1.0, 2.0], [3.0, 4.0]) is None
    assert association([1.0, 1.0, 1.0], [3.0, 4.0, 5.0]) is None


DRAWS = 2_000
SLACK = 3 * math.sqrt(0.05 * 0.95 / DRAWS)  # three Monte Carlo standard errors of 5%


@pytest.mark.slow
@pytest.mark.parametrize("n", [6, 12])
def test_p_below_005_happens_at_most_5_percent_of_the_time_without_an_association(n):
    """A seeded Monte Carlo of the very test the report uses, at the numbers of runs sweeps
    have (exact below 8 runs, resampled above): independent final losses and FIDs."""
    rng = np.random.default_rng(n)
    p = np.array([association(*rng.standard_normal((2, n))).p for _ in range(DRAWS)])
    assert (p < 0.05).mean() <= 0.05 + SLACK
    # and it is a test that finds something: a strong association is found most times
    strong = np.array([association(x, x + 0.3 * rng.standard_normal(n)).p
                       for x in rng.standard_normal((200, n))])
    assert (strong < 0.05).mean() > 0.5


def test_scipys_t_approximation_would_say_p_below_005_too_often_at_few_runs():
    """Why a permutation test: spearmanr's p-value (a t approximation) rejects 8% of the
    time at 4 runs and about 6% at 9, without an association."""
    draws = 20_000
    slack = 3 * math.sqrt(0.05 * 0.95 / draws)
    rng = np.random.default_rng(3)
    for n in (4, 9):
        x, y = rng.standard_normal((2, draws, n))
        p = np.array([stats.spearmanr(a, b).pvalue for a, b in zip(x[:5000], y[:5000])])
        rho = rank_correlation(x, y)
        with np.errstate(divide="ignore"):
            t = rho * np.sqrt((n - 2) / (1 - rho ** 2))
        approx = 2 * stats.t.sf(np.abs(t), n - 2)
        assert approx[:5000] == pytest.approx(p)  # spearmanr's p-value, vectorised
        assert (approx < 0.05).mean() > 0.05 + slack


def test_over_training_uses_the_shared_iterations_only():
    recon = [(250, 0.05), (500, 0.03), (750, 0.02), (1000, 0.025)]
    falling = [(250, 90.0), (500, 60.0), (750, 30.0), (1000, 35.0), (1250, 1.0)]
    assert over_training(recon, falling) == pytest.approx(1.0)  # 1250: no running test
    rising = [(i, -v) for i, v in falling]
    assert over_training(recon, rising) == pytest.approx(-1.0)
    assert over_training(recon[:2], falling) is None  # two shared points: no correlation
    with_nan = [(250, 90.0), (500, float("nan")), (750, 30.0)]
    assert over_training(recon, with_nan) is None  # one finite pair short


def run(norm, seed, final_loss, final_fid, slope):
    """A run as the report reads it: its running test, a quality series, its finals."""
    iters = [250, 500, 750, 1000]
    series = [(i, 0.05 - 0.01 * k) for k, i in enumerate(iters)]
    quality = [(i, 100 - slope * k) for k, i in enumerate(iters)]
    return {"norm": norm, "seed": seed, "status": "finished", "series": series,
            "quality": {"fid[digits-classifier]": quality}, "final_loss": final_loss,
            "final_fid": final_fid}


def test_the_answer_per_variant_over_all_runs_and_across_runs():
    runs = [run("bn", 0, 0.010, 30.0, 10), run("bn", 1, 0.012, 35.0, 10),
            run("wn", 0, 0.008, 20.0, 10), run("wn", 1, 0.009, 25.0, -10),
            run("wn", 2, 0.020, 50.0, 10)]
    rows = tracking(runs, lambda r: r["norm"])
    by = {(r["view"], r["scope"]): r for r in rows}
    assert by["over training", "bn"]["median_rho"] == pytest.approx(1.0)
    wn = by["over training", "wn"]
    assert (wn["n"], wn["min_rho"], wn["median_rho"], wn["max_rho"]) == (3, -1.0, 1.0, 1.0)
    assert by["over training", "all runs"]["n"] == 5
    end = by["across runs at the end", "all runs"]
    losses = [r["final_loss"] for r in runs]
    fids = [r["final_fid"] for r in runs]
    assert end["n"] == 5 and end["rho"] == pytest.approx(stats.spearmanr(losses, fids)[0])
    text = tracking_markdown(rows)
    assert "fid[digits-classifier], over training, wn: median rho +1.00 (range -1.00 to " \
           "+1.00), n = 3 runs" in text
    assert f"across runs: rho +1.00, p = {end['p']:.3f} (permutation test), n = 5 runs" in text


def test_runs_without_quality_give_no_answer():
    plain = {"norm": "wn", "status": "finished", "series": [(1, 0.1)], "quality": {}}
    assert tracking([plain], lambda r: r["norm"]) == [] and tracking_markdown([]) == ""
