"""Is a difference between two variants real? Their effect size over seeds.

Each run of a variant gives a loss (final or running). Two variants that differ in one
setting (the norm, by default) are compared by the relative difference of their losses,
`geomean(a) / geomean(b) - 1`, with a 95% confidence interval and a two-sided p-value from
a t test on the log losses (docs/statistics.md, "Is a difference real?"):
- losses are positive and a norm changes them by a factor: on the log scale the effect is a
  difference, and an interval of that difference maps back to an exact interval of the
  relative difference;
- the two variants may scatter differently (a diverging norm scatters more than a stable
  one), so the standard error is Welch's, `sqrt(var_a / n_a + var_b / n_b)`, not a pooled
  one;
- its degrees of freedom are the conservative `min(n_a, n_b) - 1` (Hsu 1938; Scheffé 1970),
  not Welch-Satterthwaite's estimate. For normally distributed log losses this keeps the
  promise at any n >= 2 per side and any ratio of the two spreads: the 95% interval covers
  the true difference at least 95% of the time, and p < 0.05 happens at most 5% of the
  time without a difference (Mickey & Brown 1966). Welch's estimated degrees of freedom do
  not: with 2 runs against 5, the 2 being the noisier side, its 95% interval covers about
  90% and p < 0.05 happens about 10% of the time. `tests/test_effects.py` checks both rates
  by a seeded Monte Carlo at the sample sizes sweeps produce.
- the price is width where runs are few: at 2 runs a side the interval is up to 2.95 times
  as wide as Welch's (t quantile 12.71 against 4.30 when both spread alike), at 3 a side
  1.55 times, at 5 a side 1.20 times, at 10 a side 1.08 times. A bootstrap at 3 to 5 seeds a
  side would understate the interval instead.
With one run on a side, or runs that all gave the same loss, there is no spread to judge
by: the estimate comes without interval or p-value, and says why.

A result that may be 0 or negative (KID, whose unbiased estimate of a small distance can
fall below 0) has no logarithm: it is compared by the difference of its means,
`mean(a) - mean(b)`, with the same test on the values themselves (`absolute_effect`).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np

METHOD = "Welch's t on log losses, df = min(n) - 1"
ABSOLUTE_METHOD = "Welch's t on the values, df = min(n) - 1"


@dataclass(frozen=True)
class Effect:
    """Side a relative to side b: `estimate` = geomean(a) / geomean(b) - 1; `low` and `high`
    bound its confidence interval and `p` is the two-sided p-value (None with one run on a
    side)."""

    n_a: int
    n_b: int
    estimate: float
    low: float | None = None
    high: float | None = None
    p: float | None = None
    no_interval: str = ""  # why there is none (then low, high and p are None)
    relative: bool = True  # False: `estimate`, `low`, `high` are a difference of means


def difference_test(log_a: np.ndarray, log_b: np.ndarray, level: float = 0.95):
    """The difference of means of `log_a` and `log_b` (log losses, or the values of an
    absolute comparison) along their last axis, with its interval and two-sided p-value (the
    module's docstring): arrays (low, high, p) of the leading shape. Vectorised so that the
    Monte Carlo of the tests runs this very code over many draws at once; scipy's
    `ttest_ind` has no conservative degrees of freedom."""
    from scipy import stats  # a slow import, which a report without pairs of seeds skips

    n_a, n_b = log_a.shape[-1], log_b.shape[-1]
    difference = log_a.mean(-1) - log_b.mean(-1)
    se = np.sqrt(log_a.var(-1, ddof=1) / n_a + log_b.var(-1, ddof=1) / n_b)
    df = min(n_a, n_b) - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2 * stats.t.sf(np.abs(difference / se), df)
    half = stats.t.ppf(0.5 + level / 2, df) * se
    return difference - half, difference + half, p


def relative_effect(a: list[float], b: list[float], level: float = 0.95) -> Effect:
    """The relative difference of a's losses to b's (see the module's docstring)."""
    values = [*a, *b]
    if a and b and not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"losses must be positive and finite to compare, got {values}")
    return _effect([math.log(v) for v in a], [math.log(v) for v in b], level, "loss",
                   back=math.expm1)


def absolute_effect(a: list[float], b: list[float], level: float = 0.95) -> Effect:
    """The difference of a's mean to b's, for results that may be 0 or negative."""
    if a and b and not all(math.isfinite(v) for v in (*a, *b)):
        raise ValueError(f"values must be finite to compare, got {[*a, *b]}")
    return _effect(list(a), list(b), level, "value", back=None)


def _effect(a: list[float], b: list[float], level: float, unit: str, back) -> Effect:
    """The difference of the means of `a` and `b` (log losses, or values), with its interval
    and p-value where both sides spread; `back` maps a difference of log losses back to a
    relative difference (None: the values' own difference)."""
    if not a or not b:
        raise ValueError(f"each side needs at least one run with a {unit}")
    relative = back is not None
    back = back or float
    estimate = back(statistics.fmean(a) - statistics.fmean(b))
    if len(a) < 2 or len(b) < 2:
        return Effect(len(a), len(b), estimate, no_interval="one run on a side",
                      relative=relative)
    if statistics.variance(a) == statistics.variance(b) == 0:
        return Effect(len(a), len(b), estimate, relative=relative,
                      no_interval=f"every run of each gave one {unit}")
    low, high, p = difference_test(np.array(a), np.array(b), level)
    return Effect(len(a), len(b), estimate, back(low), back(high), float(p), relative=relative)


def shown_difference(value: float, relative: bool) -> str:
    """A difference as a finding shows it: relative in percent, absolute to 4 digits."""
    return f"{value:+.1%}" if relative else f"{value:+.4g}"


def finding(name_a: str, name_b: str, context: str, metric: str, effect: Effect) -> str:
    """One line that reads as a finding, e.g. `wn vs bn (dcgan, celeba): final loss -10.5%
    [95% CI -16.1%, -4.9%], p = 0.004, 5 vs 5 runs` (an absolute difference: `+0.0123`)."""
    head = f"{name_a} vs {name_b}{f' ({context})' if context else ''}: {metric} " \
           f"{shown_difference(effect.estimate, effect.relative)}"
    runs = f"{effect.n_a} vs {effect.n_b} run{'s' * (effect.n_a + effect.n_b > 2)}"
    if effect.p is None:
        return f"{head}, {runs}: no interval ({effect.no_interval})"
    p = "p < 0.001" if effect.p < 0.001 else f"p = {effect.p:.3f}"
    low, high = (shown_difference(x, effect.relative) for x in (effect.low, effect.high))
    return f"{head} [95% CI {low}, {high}], {p}, {runs}"
