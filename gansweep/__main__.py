"""`python -m gansweep [overrides] [-m]`: the Hydra app around `gansweep.train.train`."""

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import gansweep.runs  # noqa: F401  (registers the run-directory resolvers the config uses)
from gansweep.errors import GansweepError

log = logging.getLogger("gansweep")


@hydra.main(version_base="1.3", config_path="pkg://gansweep.conf", config_name="config")
def main(cfg: DictConfig) -> None:
    # torch/lightning import after Hydra parses the CLI
    from gansweep.seeds import write_failures
    from gansweep.train import train

    sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        train(cfg)
    except GansweepError as error:
        log.error(f"gansweep: {error}")
        if not sweep:
            sys.exit(1)  # a single run: the message above is the whole story, no traceback
        write_failures(cfg, error)
    except Exception as error:
        if not sweep:
            raise  # not the user's input: a bug, whose traceback is the report
        log.exception(f"gansweep: run {cfg.run_dir} failed")
        write_failures(cfg, error)
    # In a sweep a failed run is recorded, not raised: Hydra would stop at the first failed
    # job's exception before the table; the table lists it and the sweep exits 1 (report.py).


if __name__ == "__main__":
    main()
