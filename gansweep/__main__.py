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
    from gansweep.train import train  # torch/lightning import after Hydra parses the CLI

    try:
        train(cfg)
    except GansweepError as error:
        log.error(f"gansweep: {error}")
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # Hydra marks this job failed; the sweep's other jobs still run
        sys.exit(1)  # a single run: the message above is the whole story, no traceback


if __name__ == "__main__":
    main()
