"""`python -m gansweep [overrides] [-m]`: the Hydra app around `gansweep.job.train`."""

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.types import RunMode
from omegaconf import DictConfig

import gansweep.rundir.names  # noqa: F401  (registers the run-directory resolvers the config uses)
from gansweep.errors import GansweepError

log = logging.getLogger("gansweep")


def register_study_sweeper() -> None:
    """gansweep's Optuna sweeper (conf/experiment/lr_study.yaml): Hydra finds plugins by
    scanning its `hydra_plugins` namespace, which misses one installed in editable mode."""
    try:
        from hydra_plugins.gansweep_study import Study
    except ImportError:  # the optuna extra is not installed: no study to run
        return
    Plugins.instance().register(Study)


@hydra.main(version_base="1.3", config_path="pkg://gansweep.conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Trains the job; returns its objective (`gansweep.objective`) for Hydra's sweepers."""
    # torch/lightning import after Hydra parses the CLI
    from gansweep.cli import describe_os_error
    from gansweep.job import run_dirs, train
    from gansweep.objective import job_objective
    from gansweep.rundir.lock import RunDirectoryBusy
    from gansweep.training.signals import Interrupted

    sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        train(cfg)
    except Interrupted as stop:  # a signal: the whole command stops, a sweep included
        log.error(f"gansweep: {stop}")
        sys.exit(stop.exit_code)
    except RunDirectoryBusy as error:  # another process's run: not this one's to record
        log.error(f"gansweep: {error}")
        if not sweep:
            sys.exit(1)
    except (GansweepError, OSError) as error:  # OSError: a disk full, a read-only path, ...
        log.error(f"gansweep: {describe_os_error(error) if isinstance(error, OSError) else error}")
        if not sweep:
            sys.exit(1)  # a single run: the message above is the whole story, no traceback
        record_failure(cfg, error)
    except Exception as error:
        if not sweep:
            raise  # not the user's input: a bug, whose traceback is the report
        log.exception(f"gansweep: run {cfg.run_dir} failed")
        record_failure(cfg, error)
    # In a sweep a failed run is recorded, not raised: Hydra would stop at the first failed
    # job's exception before the table; the table lists it and the sweep exits 1 (report/table.py).
    # Its objective is None: a failed trial to an optimisation sweeper.
    return job_objective(list(run_dirs(cfg).values()), cfg.objective)


def record_failure(cfg: DictConfig, error: Exception) -> None:
    """failed.json for the sweep's table; where even that cannot be written (the disk that
    failed the run), the log line above is the record."""
    from gansweep.run import write_failures

    try:
        write_failures(cfg, error)
    except OSError as cannot:
        log.error(f"gansweep: could not record the failure either: {cannot}")


if __name__ == "__main__":
    register_study_sweeper()
    main()
