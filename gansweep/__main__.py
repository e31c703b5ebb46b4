"""`python -m gansweep [overrides] [-m]`: the Hydra app around `gansweep.train.train`."""

import hydra
from omegaconf import DictConfig

import gansweep.runs  # noqa: F401  (registers the run-directory resolvers the config uses)


@hydra.main(version_base="1.3", config_path="pkg://gansweep.conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from gansweep.train import train  # torch/lightning import after Hydra parses the CLI

    train(cfg)


if __name__ == "__main__":
    main()
