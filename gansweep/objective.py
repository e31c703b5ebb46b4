"""What a job returns to Hydra's sweeper: the loss an optimisation sweeper (Optuna's) minimises.

`objective` names a result of the run's `summary.json` (`final_loss` by default, or
`running_loss`), so a run the sweep skips because it already finished returns its value too.
A packed job returns the mean over its seeds. A run that diverged, failed or did not finish
returns None: hydra-optuna-sweeper 1.3 records None as a failed trial and goes on (within its
`max_failure_rate`), whereas NaN makes Optuna 2's `tell` raise twice and ends the study, and
inf would be recorded as a completed trial with an infinite loss.
"""

from __future__ import annotations

import logging
import math
import statistics
from pathlib import Path

from gansweep.errors import GansweepError
from gansweep.rundir import records

log = logging.getLogger("gansweep")


def run_objective(run_dir: Path, key: str) -> float | None:
    """The run's `key` if it finished with a finite value, else None (a failed trial)."""
    try:
        summary = records.read_summary(run_dir)
    except (GansweepError, OSError) as error:
        log.error(f"gansweep: no objective for {run_dir}: {error}")
        return None
    if not summary or summary.get("status") != "finished":
        return None
    value = summary.get(key)
    return float(value) if value is not None and math.isfinite(value) else None


def job_objective(run_dirs: list[Path], key: str) -> float | None:
    """The mean of the runs' objectives; None if any run has none (one diverged seed makes the
    setting a failed trial, as it would alone)."""
    values = [run_objective(d, key) for d in run_dirs]
    if not values or any(v is None for v in values):
        return None
    return statistics.mean(values)
