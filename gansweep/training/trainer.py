"""The Lightning Trainer of a job, from the config's `trainer` node."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig

from gansweep.validate import process_count


def distributed(trainer_cfg: DictConfig) -> dict:
    """Trainer arguments for runs of several processes and for SLURM jobs."""
    extra = {}
    if trainer_cfg.strategy == "auto" and process_count(trainer_cfg) > 1:
        # Under manual optimisation D's step leaves G's parameters without gradients and vice
        # versa; DDP must be told, or it waits for them.
        extra["strategy"] = "ddp_find_unused_parameters_true"
    if SLURMEnvironment.detect():
        # Requeueing on SLURM's signal is submitit's job (gansweep/training/signals.py); two
        # handlers would requeue twice.
        extra["plugins"] = [SLURMEnvironment(auto_requeue=False)]
    return extra


def make_trainer(cfg: DictConfig, run_dir: Path, callbacks: list, logger,
                 plugins: Sequence = ()) -> L.Trainer:
    """The job's Trainer: `cfg.trainer` with `callbacks`, `logger` (None: the config's) and
    `plugins`, writing under `run_dir`."""
    extra = {"logger": logger} if logger else {}  # else trainer.logger from the config
    settings = distributed(cfg.trainer)
    plugins = [*settings.pop("plugins", []), *plugins]
    if plugins:
        extra["plugins"] = plugins
    return instantiate(cfg.trainer, callbacks=callbacks, default_root_dir=run_dir,
                       **extra, **settings)
