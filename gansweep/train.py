"""All the wiring of one run: data, model, callbacks, trainer; fit; final test; summary.

`train(cfg)` takes a composed config, so tests call it directly; `python -m gansweep` wraps it
with `@hydra.main` (see `__main__.py`). Re-running a run directory continues it:
- `summary.json` says finished: nothing to do;
- `checkpoints/last.ckpt` exists: training resumes from it.
"""

from __future__ import annotations

import copy
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import lightning as L
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gansweep import console, lock, records, restarts, signals
from gansweep.callbacks import (IterationCheckpoint, IterationProgressBar, LossHistory,
                                RunningRecon, SampleGrids)
from gansweep.errors import build
from gansweep.evaluate import load_generator, save_comparison
from gansweep.gan import LOSS_COLUMNS
from gansweep.recon import ReconSettings, reconstruct
from gansweep.tracking import log_images, wandb_logger
from gansweep.validate import ConfigError, process_count, validate

if logging.getLogger().hasHandlers():
    # `import lightning` gives its logger a console handler of its own; under Hydra, whose
    # root handlers already print to the console and the run's log file, each message would
    # appear twice.
    for handler in list(logging.getLogger("lightning").handlers):
        logging.getLogger("lightning").removeHandler(handler)


def progress(model, recon: RunningRecon) -> dict:
    """How far a run got, and its best running test (None, not inf, when no running test
    came before a divergence: JSON has no inf)."""
    return {"iters_done": model.iteration, "best_iter": recon.best_iter,
            "running_loss": recon.best_loss if recon.best_iter is not None else None}


def recon_settings(cfg: DictConfig) -> ReconSettings:
    """The paper's reconstruction protocol with `cfg`'s steps, lr and chunk size."""
    return ReconSettings(steps=cfg.steps, lr=cfg.lr, chunk_size=cfg.chunk_size)


def distributed(trainer_cfg: DictConfig) -> dict:
    """Trainer arguments for runs of several processes and for SLURM jobs."""
    extra = {}
    if trainer_cfg.strategy == "auto" and process_count(trainer_cfg) > 1:
        # Under manual optimisation D's step leaves G's parameters without gradients and vice
        # versa; DDP must be told, or it waits for them.
        extra["strategy"] = "ddp_find_unused_parameters_true"
    if SLURMEnvironment.detect():
        # Requeueing on SLURM's signal is submitit's job (gansweep/signals.py); two
        # handlers would requeue twice.
        extra["plugins"] = [SLURMEnvironment(auto_requeue=False)]
    return extra


def networks_built(hyper_parameters: dict) -> dict:
    """What G and D are built from: their configs, the norm and the image shape (not
    arch.lr or other keys of the arch group, which do not change the networks)."""
    arch = hyper_parameters.get("arch") or {}
    return {"arch": {net: arch.get(net) for net in ("generator", "discriminator")},
            **{k: hyper_parameters.get(k) for k in ("norm", "image_size", "channels")}}


def check_resumable(checkpoint: Path, model_cfg: DictConfig) -> None:
    """A run directory's checkpoint must be of the networks this config builds; otherwise
    say so, instead of a state_dict size mismatch from deep inside torch."""
    # mmap: only the small hyperparameters are read here; fit() loads the weights later
    saved = records.read_checkpoint(checkpoint)["hyper_parameters"]
    saved, wanted = networks_built(saved), networks_built(
        OmegaConf.to_container(model_cfg, resolve=True))
    differs = [k for k in wanted if saved[k] != wanted[k]]
    if differs:
        def describe(values: dict) -> str:
            return ", ".join(f"{k}={values.get(k)!r}" for k in differs)

        raise ConfigError(
            f"{checkpoint} holds a model with {describe(saved)}, but this config builds "
            f"{describe(wanted)}; that run directory belongs to other settings: run with the "
            f"original ones, or give this run a directory of its own (run_dir=...)")


def check_checkpoints(run_dir: Path, model_cfg: DictConfig) -> None:
    """Before a resume: last.ckpt is of this config's networks, and both checkpoints read
    back (best.ckpt is only read by the final test, after all the training)."""
    checkpoints = run_dir / "checkpoints"
    if (checkpoints / "last.ckpt").exists():
        check_resumable(checkpoints / "last.ckpt", model_cfg)
    if (checkpoints / "best.ckpt").exists():
        records.read_checkpoint(checkpoints / "best.ckpt")


def train(cfg: DictConfig, callbacks: Sequence[L.Callback] = ()) -> Path:
    """Train one GAN as `cfg` says, with any extra Lightning `callbacks`; returns the run dir.
    Holds the run directory's lock throughout (gansweep/lock.py); a signal stops it as
    gansweep/signals.py says."""
    console.quiet()
    validate(cfg)  # bad settings fail here, before anything is locked, built or written
    with signals.stop_at_once():
        if OmegaConf.select(cfg, "train.seeds") is not None:  # several seeds, one packed job
            from gansweep.seeds import train_seeds

            train_seeds(cfg, callbacks)
            return Path(cfg.run_dir)
        run_dir = Path(cfg.run_dir)
        with lock.hold([run_dir]):
            return train_one(cfg, run_dir, callbacks)


def train_one(cfg: DictConfig, run_dir: Path, callbacks: Sequence[L.Callback]) -> Path:
    restarts.complete_archive(run_dir)  # a kill may have stopped one half-way
    done = records.read_result(run_dir)
    if done:
        if rank_zero_only.rank == 0:
            print(f"gansweep: run already {done['status']} at iteration "
                  f"{done['iters_done']}, skipped; outputs in {run_dir}")
        return run_dir
    records.clear_failure(run_dir)  # an earlier failure, fixed since
    while train_attempt(cfg, run_dir, callbacks) == "restart":
        pass
    return run_dir


def train_attempt(cfg: DictConfig, run_dir: Path, callbacks: Sequence[L.Callback]) -> str:
    """One attempt at the run (see gansweep/restarts.py): "done", "preempted" or "restart"."""
    attempt, first_seed = restarts.attempts_archived(run_dir), cfg.seed
    if attempt:
        cfg = copy.deepcopy(cfg)
        cfg.seed = restarts.attempt_seed(first_seed, attempt)
    check_checkpoints(run_dir, cfg.model)
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    run = build_run(cfg, run_dir, callbacks)
    model, stopper, logger, trainer = run.model, run.stopper, run.logger, run.trainer
    try:
        last = run.writers.last.path
        resume_from = last if last.exists() else None
        trainer.fit(model, datamodule=run.data, ckpt_path=resume_from)
        # every rank sees the same divergence (losses are averaged over ranks first)
        restart = restarts.wanted(cfg.train, model.diverged_at, attempt)
        if trainer.is_global_zero and not stopper.stopped_by:
            recon = run.writers.recon
            summary = (attempt_summary(cfg, model, recon) if restart
                       else finish(cfg, run_dir, run.data, model, recon, trainer))
            if logger:
                logger.experiment.summary.update(summary)
    finally:
        if logger:
            logger.experiment.finish()  # one W&B run per job, even when this one fails
    if stopper.stopped_by:
        stopper.after_fit(trainer)  # requeues under submitit, else raises Interrupted
        return "preempted"  # outside submitit (tests), and on other ranks
    if restart:
        if trainer.is_global_zero:
            moved_to = restarts.archive(run_dir, attempt, summary)
            print(f"gansweep: attempt {attempt} (seed {cfg.seed}) diverged at iteration "
                  f"{model.diverged_at}, within train.restart_on_early_divergence="
                  f"{cfg.train.restart_on_early_divergence}; its files are in {moved_to}; "
                  f"starting over with seed {restarts.attempt_seed(first_seed, attempt + 1)}")
        trainer.strategy.barrier("restart")  # the others start once the directory is clear
        return "restart"
    return "done"


@dataclass
class RunCallbacks:
    """The callbacks that write a run's files, in the order they must run."""
    recon: RunningRecon
    samples: SampleGrids
    losses: LossHistory
    last: IterationCheckpoint  # last: a checkpoint at iteration k then holds all of k's work

    def in_order(self, extra: Sequence[L.Callback] = ()) -> list[L.Callback]:
        return [self.recon, self.samples, self.losses, *extra, self.last]


def run_callbacks(cfg: DictConfig, run_dir: Path) -> RunCallbacks:
    ckpt_dir, iters = run_dir / "checkpoints", cfg.train.iters
    return RunCallbacks(
        RunningRecon(cfg.recon.every, iters, cfg.recon.n_images, recon_settings(cfg.recon),
                     records.recon_history(run_dir), ckpt_dir / "best.ckpt"),
        SampleGrids(run_dir / "samples", cfg.train.sample_every, iters),
        LossHistory(run_dir / records.TRAIN_CSV, LOSS_COLUMNS, cfg.train.log_every),
        IterationCheckpoint(ckpt_dir / "last.ckpt", cfg.train.ckpt_every, iters))


@dataclass
class Run:
    """What one attempt of a run is made of, as `build_run` wires it from the config."""
    data: L.LightningDataModule
    model: L.LightningModule
    writers: RunCallbacks
    stopper: signals.StopOnSignal
    logger: object
    trainer: L.Trainer


def build_run(cfg: DictConfig, run_dir: Path, callbacks: Sequence[L.Callback] = ()) -> Run:
    """Data, model, callbacks, W&B and trainer of a run, from `cfg` (nothing trained yet)."""
    data = build(cfg.data)  # data errors surface here, before any training
    shutil.copyfile(data.split_path, run_dir / "split.json")  # the run keeps its own copy
    model = instantiate(cfg.model)
    writers = run_callbacks(cfg, run_dir)
    callbacks = writers.in_order(callbacks)
    stopper = signals.StopOnSignal(writers.last.path, cfg.train.log_every)
    callbacks.append(stopper)  # after `last`: at iteration k both write k's state
    if cfg.trainer.enable_progress_bar:
        callbacks.append(IterationProgressBar())
    logger = wandb_logger(cfg, run_dir)
    trainer = make_trainer(cfg, run_dir, callbacks, logger)
    return Run(data, model, writers, stopper, logger, trainer)


def make_trainer(cfg: DictConfig, run_dir: Path, callbacks: list, logger) -> L.Trainer:
    extra = {"logger": logger} if logger else {}  # else trainer.logger from the config
    return instantiate(cfg.trainer, callbacks=callbacks, default_root_dir=run_dir,
                       **extra, **distributed(cfg.trainer))


def attempt_summary(cfg: DictConfig, model, recon: RunningRecon) -> dict:
    """What an attempt given up for a restart reached (no final test: it is not a result)."""
    return {"status": "diverged", "restarted": True, "diverged_at": model.diverged_at,
            **records.identity(cfg), **progress(model, recon)}


def finish(cfg: DictConfig, run_dir: Path, data, model, recon: RunningRecon, trainer) -> dict:
    """The final test, `summary.json`, and the closing line of the run."""
    best = run_dir / "checkpoints" / "best.ckpt"
    final = final_test(cfg, data, best, run_dir, trainer) if best.exists() else \
        {"final_loss": None, "final_iter": None, "final_n_images": 0,
         "final_steps": cfg.final.steps}
    diverged = model.diverged_at is not None
    summary = {
        "status": "diverged" if diverged else "finished",
        "diverged_at": model.diverged_at,
        **records.identity(cfg), **progress(model, recon),
        "running_n_images": cfg.recon.n_images, "running_steps": cfg.recon.steps,
        **final,
        "restarts": restarts.history(run_dir),  # earlier attempts that diverged early
    }
    records.write_summary(run_dir, summary)
    if diverged:
        best = (f"best running reconstruction error {recon.best_loss:.6f} at iteration "
                f"{recon.best_iter}" if recon.best_iter is not None else "no running test before it")
        print(f"gansweep: run diverged at iteration {model.diverged_at} (NaN/inf); {best}; "
              f"checkpoints and history kept in {run_dir}")
    else:
        print(f"gansweep: run finished at iteration {model.iteration}: best running "
              f"reconstruction error {recon.best_loss:.6f} at iteration {recon.best_iter}, "
              f"final {final['final_loss']:.6f}; outputs in {run_dir}")
    return summary


def final_test(cfg: DictConfig, data, best: Path, run_dir: Path, trainer=None) -> dict:
    """The paper's final test: the best checkpoint on the final set, with more z steps;
    `final_recon.png` shows the first targets above their reconstructions."""
    generator, iteration = load_generator(best)
    images = data.heldout_images(cfg.final.n_images)
    rec = reconstruct(generator, images, recon_settings(cfg.final))
    save_comparison(images, rec, run_dir / "final_recon.png")
    log_images(trainer, iteration, final_recon=run_dir / "final_recon.png")
    return {"final_loss": rec.mean, "final_iter": iteration, "final_n_images": len(images),
            "final_steps": cfg.final.steps}
