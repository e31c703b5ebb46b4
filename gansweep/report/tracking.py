"""The paper's third question, asked of any sweep: does the running reconstruction error
track training progress and sample quality?

Two views, for each sample-quality series the runs have (`fid[...]`, `kid[...]`):
- over training, within a run: Spearman's rank correlation between its running test
  (`recon.csv`) and its sample quality (`quality.csv`) over the iterations both were
  measured at (at least `MIN_POINTS`; `quality.every` defaults to `recon.every`, so they
  share all of them). Lower is better for both, so +1 says the two rank the run's
  checkpoints alike. Per variant and over all runs: the median, the range, and n runs.
- across runs, at the end: Spearman's rank correlation between the runs' final
  reconstruction error and their final FID/KID (each from the final test of the same best
  checkpoint), with n and a two-sided p-value. The p-value is a permutation test's (scipy's
  `permutation_test` over pairings): exact, over every pairing, up to 7 runs, and from
  `RESAMPLES` seeded random pairings beyond. scipy's own `spearmanr` p-value is a t
  approximation that its documentation calls accurate only for large samples, and sweeps
  have 6 to 30 runs (`tests/test_tracking.py` measures both rates by a seeded Monte Carlo).

What it does not show: a correlation over training is mostly the shared early descent of
both; it says the two agree on which checkpoints are better, not that one causes the other,
nor that they agree on small differences late in training. The digits' features are those
of a small classifier, not Inception's.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np

MIN_POINTS = 3  # shared iterations a run needs for a correlation over its training
RESAMPLES = 9_999  # random pairings of a permutation p-value beyond exact enumeration
SEED = 0  # of those pairings: a report made again gives the same p-values


def rank_correlation(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's rho of x and y along `axis`: Pearson's correlation of their ranks (ties
    share their mean rank, as `scipy.stats.spearmanr`). Vectorised over the other axes,
    which `spearmanr` is not for pairs of 1-D series, so that a permutation test over
    thousands of pairings runs at once."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x, axis=axis), rankdata(y, axis=axis)
    rx = rx - rx.mean(axis=axis, keepdims=True)
    ry = ry - ry.mean(axis=axis, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (rx * ry).sum(axis) / np.sqrt((rx * rx).sum(axis) * (ry * ry).sum(axis))


@dataclass(frozen=True)
class Association:
    n: int
    rho: float
    p: float


def association(x: list[float], y: list[float]) -> Association | None:
    """Spearman's rho of paired values with a permutation p-value (module docstring); None
    with fewer than 3 pairs or a constant side (no ranks to correlate)."""
    from scipy.stats import permutation_test

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    x_, y_ = np.asarray(x, float), np.asarray(y, float)
    test = permutation_test((x_,), lambda a, axis=-1: rank_correlation(a, y_, axis),
                            permutation_type="pairings", vectorized=True,
                            n_resamples=RESAMPLES, alternative="two-sided",
                            rng=np.random.default_rng(SEED))
    return Association(len(x), float(test.statistic), float(test.pvalue))


def over_training(recon: list[tuple[int, float]],
                  quality: list[tuple[int, float]]) -> float | None:
    """A run's rho between its running test and one quality series over their shared
    iterations (finite values only); None with fewer than `MIN_POINTS` or a constant one."""
    a = {i: v for i, v in recon if math.isfinite(v)}
    b = {i: v for i, v in quality if math.isfinite(v)}
    shared = sorted(a.keys() & b.keys())
    x, y = [a[i] for i in shared], [b[i] for i in shared]
    if len(shared) < MIN_POINTS or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(rank_correlation(np.array(x), np.array(y)))


@dataclass(frozen=True)
class Spread:
    """Runs' rho over training: the median, the range, how many runs had one."""
    n: int
    median: float
    low: float
    high: float


def spread(values: list[float]) -> Spread | None:
    return Spread(len(values), statistics.median(values), min(values), max(values)) \
        if values else None


def quality_metrics(runs: list[dict]) -> list[str]:
    """The quality series some run has (`fid[digits-classifier]`...), KID's std left out."""
    return sorted({c for r in runs for c in r.get("quality", {}) if not c.startswith("kid_std")})


def final_key(column: str) -> str:
    """The summary key of a quality column's final value: `fid[x]` -> `final_fid`."""
    return "final_" + column.split("[")[0]


def tracking(runs: list[dict], label) -> list[dict]:
    """Rows of the answer: for each quality series, over training per variant (`label`
    gives a run's variant) and over all runs, then across runs at the end."""
    rows = []
    for column in quality_metrics(runs):
        measured = [r for r in runs if column in r.get("quality", {})]
        per_run = {id(r): over_training(r["series"], r["quality"][column]) for r in measured}
        groups: dict[str, list[dict]] = {}
        for run in measured:
            groups.setdefault(label(run), []).append(run)
        for scope, members in [*sorted(groups.items()), ("all runs", measured)]:
            values = [per_run[id(r)] for r in members if per_run[id(r)] is not None]
            found = spread(values)
            rows.append({"metric": column, "view": "over training", "scope": scope,
                         "n": found.n if found else 0,
                         "median_rho": found.median if found else None,
                         "min_rho": found.low if found else None,
                         "max_rho": found.high if found else None,
                         "rho": None, "p": None, "runs_without": len(members) - len(values)})
        # a run's final FID is that of the checkpoint whose final reconstruction error it is
        paired = [r for r in measured if _finite(r.get("final_loss"))
                  and _finite(r.get(final_key(column)))]
        found = association([r["final_loss"] for r in paired],
                            [r[final_key(column)] for r in paired])
        rows.append({"metric": column, "view": "across runs at the end", "scope": "all runs",
                     "n": len(paired), "median_rho": None, "min_rho": None, "max_rho": None,
                     "rho": found.rho if found else None, "p": found.p if found else None,
                     "runs_without": len(measured) - len(paired)})
    return rows


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def tracking_markdown(rows: list[dict]) -> str:
    """The answer as lines below the table (empty when no run measured sample quality)."""
    if not rows:
        return ""
    lines = ["", "Does the reconstruction error track sample quality? Spearman's rho "
                 "(+1: both rank alike; lower is better for both):", ""]
    for row in rows:
        without = f", {row['runs_without']} without" if row["runs_without"] else ""
        if row["view"] == "over training":
            if not row["n"]:
                lines.append(f"- {row['metric']}, over training, {row['scope']}: no run with "
                             f"{MIN_POINTS} shared test iterations{without}")
                continue
            lines.append(f"- {row['metric']}, over training, {row['scope']}: median rho "
                         f"{row['median_rho']:+.2f} (range {row['min_rho']:+.2f} to "
                         f"{row['max_rho']:+.2f}), n = {row['n']} run"
                         f"{'s' * (row['n'] > 1)}{without}")
        elif row["rho"] is None:
            lines.append(f"- {row['metric']}, final reconstruction error vs final value across "
                         f"runs: too few runs ({row['n']}; 3 with distinct values needed)"
                         f"{without}")
        else:
            p = "p < 0.001" if row["p"] < 0.001 else f"p = {row['p']:.3f}"
            lines.append(f"- {row['metric']}, final reconstruction error vs final value across "
                         f"runs: rho {row['rho']:+.2f}, {p} (permutation test), n = {row['n']} "
                         f"runs{without}")
    return "\n".join(lines) + "\n"
