"""All the wiring of one run: data, model, callbacks, trainer; fit; report where outputs are.

`train(cfg)` takes a composed config, so tests call it directly; `python -m gansweep` wraps it
with `@hydra.main` (see `__main__.py`). A run directory that already holds
`checkpoints/last.ckpt` is resumed from it: re-running the same command continues the run.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Sequence

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gansweep.callbacks import IterationCheckpoint, LossHistory, SampleGrids

LOSS_COLUMNS = ["d_loss", "g_loss", "d_real", "d_fake"]

if logging.getLogger().hasHandlers():
    # `import lightning` gives its logger a console handler of its own; under Hydra, whose
    # root handlers already print to the console and the run's log file, each message would
    # appear twice.
    for handler in list(logging.getLogger("lightning").handlers):
        logging.getLogger("lightning").removeHandler(handler)


def train(cfg: DictConfig, callbacks: Sequence[L.Callback] = ()) -> Path:
    """Train one GAN as `cfg` says, with any extra Lightning `callbacks`; returns the run dir."""
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    data = instantiate(cfg.data)
    shutil.copyfile(data.split_path, run_dir / "split.json")  # the run keeps its own copy
    model = instantiate(cfg.model)
    checkpoints = IterationCheckpoint(run_dir / "checkpoints", cfg.train.ckpt_every)
    callbacks = [
        checkpoints,
        SampleGrids(run_dir / "samples", cfg.train.sample_every),
        LossHistory(run_dir / "train.csv", LOSS_COLUMNS),
        *callbacks,
    ]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, default_root_dir=run_dir)
    resume = checkpoints.last if checkpoints.last.exists() else None
    trainer.fit(model, datamodule=data, ckpt_path=resume)
    if trainer.is_global_zero:
        print(f"gansweep: run finished at iteration {model.iteration}; outputs in {run_dir}")
    return run_dir
