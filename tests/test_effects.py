"""Effect sizes over seeds (gansweep/report/effects.py) against a hand-computed case and scipy, and
by their error rates in a seeded Monte Carlo."""

import math

import numpy as np
import pytest
from scipy import stats

from gansweep.report.effects import finding, difference_test, relative_effect


def test_a_two_by_two_case_computed_by_hand():
    """log a = [0, 2], log b = [-1, 1]: difference 1, standard error sqrt(2/2 + 2/2) =
    sqrt(2), df = min(2, 2) - 1 = 1, where Student's t is Cauchy's: two-sided
    p = 1 - 2 atan(t) / pi and the 97.5% quantile is tan(0.475 pi)."""
    effect = relative_effect([math.exp(0), math.exp(2)], [math.exp(-1), math.exp(1)])
    t, se = 1 / math.sqrt(2), math.sqrt(2)
    quantile = math.tan(0.475 * math.pi)
    assert effect.estimate == pytest.approx(math.e - 1)
    assert effect.p == pytest.approx(1 - 2 * math.atan(t) / math.pi)
    assert effect.low == pytest.approx(math.expm1(1 - quantile * se))
    assert effect.high == pytest.approx(math.expm1(1 + quantile * se))
    assert (effect.n_a, effect.n_b) == (2, 2)


@pytest.mark.parametrize("a, b", [
    ([0.0055, 0.0061, 0.0052, 0.0058, 0.0049], [0.0063, 0.0066, 0.0060, 0.0071, 0.0064]),
    ([0.012, 0.013, 0.011], [0.010, 0.019, 0.014, 0.030]),  # unequal n and spread
])
def test_the_statistic_is_scipys_welch_t_with_min_n_minus_one_degrees_of_freedom(a, b):
    effect = relative_effect(a, b)
    log_a, log_b = [math.log(x) for x in a], [math.log(x) for x in b]
    welch = stats.ttest_ind(log_a, log_b, equal_var=False)
    df = min(len(a), len(b)) - 1
    difference = sum(log_a) / len(a) - sum(log_b) / len(b)
    se = difference / welch.statistic
    half = stats.t.ppf(0.975, df) * se
    assert effect.p == pytest.approx(2 * stats.t.sf(abs(welch.statistic), df))
    assert (effect.low, effect.high) == pytest.approx(
        (math.expm1(difference - half), math.expm1(difference + half)))
    geomean = lambda xs: math.exp(sum(map(math.log, xs)) / len(xs))
    assert effect.estimate == pytest.approx(geomean(a) / geomean(b) - 1)
    assert effect.low < effect.estimate < effect.high
    # never narrower, never more significant than Welch's own degrees of freedom
    welch_low, welch_high = welch.confidence_interval(0.95)
    assert effect.low <= math.expm1(welch_low) and effect.high >= math.expm1(welch_high)
    assert effect.p >= welch.pvalue


# The sample sizes sweeps give: balanced, and one side short (failed or diverged runs),
# with either side the noisier (the spread of the side of `n_a` runs is `spread` times b's).
DESIGNS = [(n_a, n_b, spread) for n_a, n_b in [(2, 2), (3, 3), (5, 5), (10, 10), (2, 3),
                                               (2, 5), (5, 2), (2, 10), (10, 2), (3, 10)]
           for spread in (1.0, 4.0)]
DRAWS = 20_000
# three Monte Carlo standard errors of a 5% rate over DRAWS draws
SLACK = 3 * math.sqrt(0.05 * 0.95 / DRAWS)


@pytest.mark.parametrize("n_a, n_b, spread", DESIGNS)
def test_the_interval_covers_95_percent_and_p_is_below_005_at_most_5_percent(n_a, n_b,
                                                                            spread):
    """A seeded Monte Carlo of the very test the report uses, on normal log losses: without
    a difference p < 0.05 at most 5% of the time, and with one (a 30% higher loss) the 95%
    interval covers it at least 95% of the time, each within Monte Carlo error."""
    rng = np.random.default_rng(1000 * n_a + 10 * n_b + int(spread))
    noise_a = spread * rng.standard_normal((DRAWS, n_a))
    noise_b = rng.standard_normal((DRAWS, n_b))
    _, _, p = difference_test(noise_a, noise_b)
    assert (p < 0.05).mean() <= 0.05 + SLACK
    shift = math.log(1.3)
    low, high, _ = difference_test(shift + noise_a, noise_b)
    assert ((low <= shift) & (shift <= high)).mean() >= 0.95 - SLACK


def test_welchs_estimated_degrees_of_freedom_would_break_that_promise():
    """Why the conservative degrees of freedom: at 2 runs against 5, the 2 the noisier,
    Welch-Satterthwaite's p < 0.05 happens about 10% of the time without a difference."""
    rng = np.random.default_rng(7)
    a, b = 4.0 * rng.standard_normal((DRAWS, 2)), rng.standard_normal((DRAWS, 5))
    welch = stats.ttest_ind(a, b, axis=1, equal_var=False)
    assert (welch.pvalue < 0.05).mean() > 0.05 + SLACK
    assert (difference_test(a, b)[2] < 0.05).mean() <= 0.05


def test_a_finding_reads_as_one_line_with_its_interval():
    effect = relative_effect([0.0055, 0.0061, 0.0052, 0.0058, 0.0049],
                             [0.0063, 0.0066, 0.0060, 0.0071, 0.0064])
    line = finding("wn", "bn", "dcgan, celeba", "final loss", effect)
    assert line == (f"wn vs bn (dcgan, celeba): final loss {effect.estimate:+.1%} "
                    f"[95% CI {effect.low:+.1%}, {effect.high:+.1%}], p = {effect.p:.3f}, "
                    f"5 vs 5 runs")


@pytest.mark.parametrize("a, b, why", [
    ([0.01], [0.02, 0.03], "one run on a side"),
    ([0.01, 0.01], [0.02, 0.02], "every run of each gave one loss"),
])
def test_without_spread_there_is_an_estimate_and_no_interval(a, b, why):
    effect = relative_effect(a, b)
    assert effect.estimate < 0 and effect.p is None and effect.low is None
    assert finding("wn", "bn", "", "final loss", effect).endswith(f": no interval ({why})")


@pytest.mark.parametrize("a, b", [([], [0.1]), ([0.1, float("nan")], [0.1]), ([0.0], [0.1])])
def test_losses_it_cannot_compare_are_refused_clearly(a, b):
    with pytest.raises(ValueError, match="at least one run|positive and finite"):
        relative_effect(a, b)
