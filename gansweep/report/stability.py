"""The paper's other claim, measured: after its best, does a run's running loss stay there?

Per run, from its running test (`recon.csv`): the iteration of its lowest running loss, how far
the loss had risen above that best by the last test (`last / best - 1`), and at its highest
after the best (`peak / best - 1`, the worst rise). Per variant: the mean and spread of the
runs' rise, the worst rise of any run, and the share of its runs that diverged. Runs enter as
the table's losses do: finished and diverged ones (a diverged run up to its divergence)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from gansweep.rundir.records import RESULTS


@dataclass(frozen=True)
class RunStability:
    best_iter: int
    best: float
    rise: float  # last / best - 1
    worst_rise: float  # highest after the best / best - 1


def up_to_divergence(series: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """The (iteration, loss) rows before the first non-finite loss: a run's running test
    gives NaN or inf once its G has diverged, and what follows is no longer a loss."""
    for at, (_, loss) in enumerate(series):
        if not math.isfinite(loss):
            return series[:at]
    return series


def run_stability(series: list[tuple[int, float]]) -> RunStability | None:
    """A run's stability from its (iteration, running loss) rows; None without any."""
    if not series:
        return None
    at = min(range(len(series)), key=lambda i: series[i][1])  # the first lowest
    best_iter, best = series[at]
    after = [loss for _, loss in series[at:]]
    return RunStability(best_iter, best, after[-1] / best - 1, max(after) / best - 1)


@dataclass(frozen=True)
class VariantStability:
    rises: list[float]  # each run's rise at its last test
    worst_rise: float | None  # the highest rise of any run
    diverged: int
    ended: int  # runs that finished or diverged

    def cells(self) -> list[str]:
        """The table's cells: rise after best (mean ± std), worst rise, diverged share."""
        if not self.rises:
            rise = "-"
        elif len(self.rises) == 1:
            rise = f"{self.rises[0]:+.1%}"
        else:
            rise = f"{statistics.mean(self.rises):+.1%} ± {statistics.stdev(self.rises):.1%}"
        worst = "-" if self.worst_rise is None else f"{self.worst_rise:+.1%}"
        return [rise, worst, f"{self.diverged}/{self.ended}" if self.ended else "-"]


COLUMNS = ["rise after best", "worst rise", "diverged"]


def variant_stability(runs: list[dict]) -> VariantStability:
    """A variant's stability over its ended runs (`gansweep.report`'s run dicts)."""
    ended = [r for r in runs if r["status"] in RESULTS]
    each = [s for s in (run_stability(r["series"]) for r in ended) if s is not None]
    return VariantStability(
        rises=[s.rise for s in each],
        worst_rise=max((s.worst_rise for s in each), default=None),
        diverged=sum(r["status"] == "diverged" for r in ended), ended=len(ended))
