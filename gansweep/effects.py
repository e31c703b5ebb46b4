"""Is a difference between two variants real? Their effect size over seeds.

Each run of a variant gives a loss (final or running). Two variants that differ in one
setting (the norm, by default) are compared by the relative difference of their losses,
`geomean(a) / geomean(b) - 1`, with a 95% confidence interval and a two-sided p-value from
Welch's t test on the log losses (README, "Is a difference real?"):
- losses are positive and a norm changes them by a factor: on the log scale the effect is a
  difference, and the t interval of that difference maps back to an exact interval of the
  relative difference;
- Welch's test does not assume the two variants scatter alike (a diverging norm scatters
  more than a stable one), and it is exact for normally distributed log losses at any
  n >= 2 per side; a bootstrap at the usual 3 to 5 seeds per side would understate the
  interval.
With one run on a side, or runs that all gave the same loss, there is no spread to judge
by: the estimate comes without interval or p-value, and says why.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

METHOD = "Welch's t test on log losses"


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


def relative_effect(a: list[float], b: list[float], level: float = 0.95) -> Effect:
    """The relative difference of a's losses to b's (see the module's docstring)."""
    values = [*a, *b]
    if not a or not b:
        raise ValueError("each side needs at least one run with a loss")
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"losses must be positive and finite to compare, got {values}")
    log_a, log_b = [math.log(v) for v in a], [math.log(v) for v in b]
    difference = statistics.fmean(log_a) - statistics.fmean(log_b)
    estimate = math.expm1(difference)
    if len(a) < 2 or len(b) < 2:
        return Effect(len(a), len(b), estimate, no_interval="one run on a side")
    if statistics.variance(log_a) == statistics.variance(log_b) == 0:
        return Effect(len(a), len(b), estimate, no_interval="every run of each gave one loss")
    from scipy import stats  # a slow import, which a report without pairs of seeds skips

    test = stats.ttest_ind(log_a, log_b, equal_var=False)
    low, high = test.confidence_interval(level)
    return Effect(len(a), len(b), estimate, math.expm1(low), math.expm1(high),
                  float(test.pvalue))


def finding(name_a: str, name_b: str, context: str, metric: str, effect: Effect) -> str:
    """One line that reads as a finding, e.g. `wn vs bn (dcgan, celeba): final loss -10.5%
    [95% CI -16.1%, -4.9%], p = 0.004, 5 vs 5 runs`."""
    head = f"{name_a} vs {name_b}{f' ({context})' if context else ''}: {metric} " \
           f"{effect.estimate:+.1%}"
    runs = f"{effect.n_a} vs {effect.n_b} run{'s' * (effect.n_a + effect.n_b > 2)}"
    if effect.p is None:
        return f"{head}, {runs}: no interval ({effect.no_interval})"
    p = "p < 0.001" if effect.p < 0.001 else f"p = {effect.p:.3f}"
    return f"{head} [95% CI {effect.low:+.1%}, {effect.high:+.1%}], {p}, {runs}"
