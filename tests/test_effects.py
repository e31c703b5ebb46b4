"""Effect sizes over seeds (gansweep/effects.py) against a hand-computed case and scipy."""

import math

import pytest
from scipy import stats

from gansweep.effects import finding, relative_effect


def test_a_two_by_two_case_computed_by_hand():
    """log a = [0, 2], log b = [-1, 1]: difference 1, standard error sqrt(2/2 + 2/2) =
    sqrt(2), Welch's df = 2, where Student's t has closed forms: two-sided
    p = 1 - t / sqrt(2 + t^2) and the 97.5% quantile is 0.95 / sqrt(2 * 0.975 * 0.025)."""
    effect = relative_effect([math.exp(0), math.exp(2)], [math.exp(-1), math.exp(1)])
    t, se = 1 / math.sqrt(2), math.sqrt(2)
    quantile = 0.95 / math.sqrt(2 * 0.975 * 0.025)
    assert effect.estimate == pytest.approx(math.e - 1)
    assert effect.p == pytest.approx(1 - t / math.sqrt(2 + t * t))
    assert effect.low == pytest.approx(math.expm1(1 - quantile * se))
    assert effect.high == pytest.approx(math.expm1(1 + quantile * se))
    assert (effect.n_a, effect.n_b) == (2, 2)


@pytest.mark.parametrize("a, b", [
    ([0.0055, 0.0061, 0.0052, 0.0058, 0.0049], [0.0063, 0.0066, 0.0060, 0.0071, 0.0064]),
    ([0.012, 0.013, 0.011], [0.010, 0.019, 0.014, 0.030]),  # unequal n and spread
])
def test_the_interval_and_p_value_are_scipys_welch_test_on_the_log_losses(a, b):
    effect = relative_effect(a, b)
    test = stats.ttest_ind([math.log(x) for x in a], [math.log(x) for x in b], equal_var=False)
    low, high = test.confidence_interval(0.95)
    assert effect.p == pytest.approx(test.pvalue)
    assert (effect.low, effect.high) == pytest.approx((math.expm1(low), math.expm1(high)))
    geomean = lambda xs: math.exp(sum(map(math.log, xs)) / len(xs))
    assert effect.estimate == pytest.approx(geomean(a) / geomean(b) - 1)
    assert effect.low < effect.estimate < effect.high


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
