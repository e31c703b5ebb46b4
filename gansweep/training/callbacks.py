"""Callbacks that write a run's outputs, keyed on the GAN iteration (not `global_step`).

Each fires every N iterations and at the last one (`train.iters`), after reading the losses
back from the device (`GAN.read_losses`), and only while every loss so far was finite: a run
that diverged saves nothing from the faulty iteration on.

- `RunningRecon`: the paper's running test:
  `recon.csv`, the logged `recon/running`, and `checkpoints/best.ckpt` on each improvement.
- `IterationCheckpoint`: `checkpoints/last.ckpt`.
- `SampleGrids`: `samples/iter_XXXXXX.png` from fixed codes, via torchvision's `save_image`.
- `SampleQuality`: `quality.csv` and `quality/*`: FID/KID of G's samples (gansweep/quality),
  with the best value of each so far.
- `LossHistory`: `train.csv` and the loggers' `train/*` series, one row per iteration, read
  back every `train.log_every` iterations and before every checkpoint; it sends the W&B rows
  (gansweep.training.wandb_logger.IterationLogger), once the others have added their values.
- `IterationProgressBar`: Lightning's bar, counting GAN iterations.

Lightning's `ModelCheckpoint` counts optimizer steps (two per GAN iteration under manual
optimisation) and special-cases manual optimisation with warnings, so the triggers are ours;
the checkpoints are Lightning's full `trainer.save_checkpoint` (model, optimisers, loops,
callback states), written to a temporary file and renamed so a kill never leaves a torn one.

They are written against `RunModule` and `RunTrainer`, the parts of their module and trainer
they may use: a run alone passes its GAN and Lightning's Trainer, a packed seed its views of
the packed job (gansweep/training/packed.py), so each callback is written and tested once.

Order matters: `IterationCheckpoint` goes last, so a checkpoint taken at iteration k holds
everything done at k (the evaluation's best-so-far state, its `recon.csv` row); a run
resumed from it goes on with iteration k + 1. `LossHistory` comes after the callbacks that log
at k, so that k's W&B row goes out whole.

A resumed run's W&B piece starts where the earlier pieces stop (`wandb_logger.held`), which may be
before the checkpoint (a kill loses what W&B had not yet written): each callback replays its
own series from its own file, up to the checkpoint, when training starts.
"""

from __future__ import annotations

import bisect
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, ContextManager, Protocol, runtime_checkable

import lightning as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from torchvision.utils import save_image

from gansweep.method.reconstruction import ReconSettings, reconstruct
from gansweep.quality.evaluation import QualitySettings, QualityTest
from gansweep.rundir.durable import IterationCsv
from gansweep.training.wandb_logger import flush_rows, held, log_image, log_row


@runtime_checkable
class RunModule(Protocol):
    """What a run's callbacks use of their module: `gan.GAN`, or one seed of a packed job
    (`packed.SeedModule`)."""

    iteration: int  # GAN iterations done (at a divergence: the faulty one)
    diverged_at: int | None  # set by the running test when G's output is not finite
    read: list  # (iteration, losses) rows read back and not yet written
    latest_losses: dict  # the last row read, by column

    def read_losses(self) -> bool:
        """Reads the unread losses back; whether this run is still live (all finite)."""

    def generator_alone(self) -> ContextManager[torch.nn.Module]:
        """This run's G as a network of its own, for as long as the block runs."""

    def samples(self) -> torch.Tensor:
        """G's images from the run's fixed codes, in eval mode."""


@runtime_checkable
class RunTrainer(Protocol):
    """What a run's callbacks use of their trainer: Lightning's `Trainer`, or one seed's view
    of the packed job's (`packed.SeedTrainer`)."""

    is_global_zero: bool
    world_size: int
    global_step: int
    loggers: list  # the run's own loggers
    datamodule: Any  # gansweep.data.module.GANData: heldout_images()
    strategy: Any  # Lightning's Strategy: broadcast, reduce, barrier
    should_stop: bool  # set: this run ends after the current iteration

    def save_checkpoint(self, filepath, weights_only: bool = False) -> None:
        """The run's checkpoint, as a run alone writes it, to `filepath`."""


def atomic_save_checkpoint(trainer: RunTrainer, path: Path) -> None:
    """`trainer.save_checkpoint` to `path` via a temporary file (every rank must call it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    trainer.save_checkpoint(tmp, weights_only=False)
    if trainer.is_global_zero:
        os.replace(tmp, path)
    trainer.strategy.barrier("atomic_save_checkpoint")


class _EveryN(L.Callback):
    """Calls `self.run(trainer, module)` every `every` iterations and at iteration `last`."""

    def __init__(self, every: int, last: int):
        self.every, self.last = every, last

    def run(self, trainer, pl_module) -> None:
        raise NotImplementedError

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        due = pl_module.iteration % self.every == 0 or pl_module.iteration == self.last
        if due and pl_module.read_losses():
            self.run(trainer, pl_module)


class RunningRecon(_EveryN):
    """The paper's running test on the first `n_images` held-out images."""

    def __init__(self, every: int, last: int, n_images: int, settings: ReconSettings,
                 history: IterationCsv, best_path, progress: str | None = None):
        super().__init__(every, last)
        self.n_images, self.settings, self.progress = n_images, settings, progress
        self.csv = history  # recon.csv (gansweep.rundir.records.recon_history)
        self.best_path = Path(best_path)
        self.best_loss, self.best_iter = math.inf, None

    def setup(self, trainer, pl_module, stage):
        if trainer.is_global_zero:
            self.images = trainer.datamodule.heldout_images(self.n_images)

    def on_train_start(self, trainer, pl_module):
        if trainer.is_global_zero:
            replay(trainer, self.csv.open(resumed_at=pl_module.iteration),
                   lambda row: {"recon/running": float(row["recon_mse"])})

    def run(self, trainer, pl_module):
        # Once per evaluation, on rank 0 (G is the same on every rank); the others get the
        # result, since all ranks take part in saving best.ckpt.
        loss = None
        if trainer.is_global_zero:
            with pl_module.generator_alone() as generator:
                loss = self._test(generator)
        loss = trainer.strategy.broadcast(loss, src=0)
        if not math.isfinite(loss):  # G produces NaN/inf: the run has diverged
            pl_module.diverged_at = pl_module.diverged_at or pl_module.iteration
            trainer.should_stop = True
        if trainer.is_global_zero:
            self.csv.write(pl_module.iteration, {"recon_mse": loss})
        # Straight to the loggers: a value `self.log`ged from a callback is repeated at later
        # steps until overwritten, which would turn the series into a staircase.
        log_row(trainer, pl_module.iteration, {"recon/running": loss})
        if loss < self.best_loss:
            self.best_loss, self.best_iter = loss, pl_module.iteration
            atomic_save_checkpoint(trainer, self.best_path)

    def _test(self, generator) -> float:
        result = reconstruct(generator, self.images, self.settings, self.progress)
        # a chunk smaller than asked for ran out of memory: start there next time
        self.settings = replace(self.settings, chunk_size=result.chunk_size)
        return result.mean

    def on_train_end(self, trainer, pl_module):
        self.csv.close()

    def on_exception(self, trainer, pl_module, exception):
        self.csv.close()

    def state_dict(self):
        return {"best_loss": self.best_loss, "best_iter": self.best_iter}

    def load_state_dict(self, state_dict):
        self.best_loss, self.best_iter = state_dict["best_loss"], state_dict["best_iter"]


class IterationCheckpoint(_EveryN):
    def __init__(self, path: str | Path, every: int, last: int):
        super().__init__(every, last)
        self.path = Path(path)

    def run(self, trainer, pl_module):
        atomic_save_checkpoint(trainer, self.path)


class SampleGrids(_EveryN):
    def __init__(self, dirpath: str | Path, every: int, last: int):
        super().__init__(every, last)
        self.dirpath = Path(dirpath)

    def path(self, iteration: int) -> Path:
        return self.dirpath / f"iter_{iteration:06d}.png"

    def on_train_start(self, trainer, pl_module):
        if trainer.is_global_zero:  # replayed: the grids up to the checkpoint W&B lacks
            for iteration in range(held(trainer) + 1, pl_module.iteration + 1):
                due = iteration % self.every == 0 or iteration == self.last
                if due and self.path(iteration).exists():
                    log_image(trainer, iteration, "samples", self.path(iteration))

    def run(self, trainer, pl_module):
        if trainer.is_global_zero:
            self.dirpath.mkdir(parents=True, exist_ok=True)
            images = pl_module.samples()
            path = self.path(pl_module.iteration)
            save_image(images, path, nrow=round(math.sqrt(len(images))), padding=2,
                       pad_value=0.5)
            log_image(trainer, pl_module.iteration, "samples", path)


class SampleQuality(_EveryN):
    """FID/KID of G's samples against the training images, on rank 0 (G is the same on every
    rank, and nothing of training depends on it): `quality.csv`, `quality/<column>` to the
    loggers, and each column's best (lowest) value and its iteration."""

    def __init__(self, every: int, last: int, settings: QualitySettings, seed: int,
                 history_path: Path):
        super().__init__(every, last)
        self.settings, self.seed = settings, seed
        self.history_path = Path(history_path)
        self.test, self.csv = None, None
        self.best: dict[str, tuple[float, int]] = {}  # column -> (value, iteration)

    def setup(self, trainer, pl_module, stage):
        if trainer.is_global_zero:
            self.test = QualityTest(self.settings, trainer.datamodule, self.seed)
            self.csv = IterationCsv(self.history_path, self.test.columns())

    def on_train_start(self, trainer, pl_module):
        if trainer.is_global_zero:
            replay(trainer, self.csv.open(resumed_at=pl_module.iteration),
                   lambda row: {f"quality/{c}": float(row[c]) for c in self.test.columns()})

    def run(self, trainer, pl_module):
        if not trainer.is_global_zero:
            return
        with pl_module.generator_alone() as generator:
            values = self.test(generator)
        if values is None:  # G's samples are not finite: the running test says it diverged
            return
        self.csv.write(pl_module.iteration, values)
        log_row(trainer, pl_module.iteration, {f"quality/{c}": v for c, v in values.items()})
        for column, value in values.items():
            if not column.startswith("kid_std") and value < self.best.get(column, (math.inf,))[0]:
                self.best[column] = (value, pl_module.iteration)

    def on_train_end(self, trainer, pl_module):
        if self.csv is not None:
            self.csv.close()

    def on_exception(self, trainer, pl_module, exception):
        self.on_train_end(trainer, pl_module)

    def state_dict(self):
        return {"best": {c: list(v) for c, v in self.best.items()}}

    def load_state_dict(self, state_dict):
        self.best = {c: (v, i) for c, (v, i) in state_dict["best"].items()}


class LossHistory(L.Callback):
    """Writes the rows `GAN.read_losses` brings back to `train.csv` (one per iteration) and
    to the loggers as `train/*` against `trainer/iter`.

    Reads every `every` iterations on every rank (the read is collective under DDP); the
    callbacks that save read first, and a checkpoint flushes what was read, so `train.csv`
    always holds every row up to the last checkpoint (what a resume keeps).
    """

    def __init__(self, path: str | Path, columns: list[str], every: int):
        self.csv = IterationCsv(path, columns)
        self.columns, self.every = columns, every
        self._open = False

    def on_train_start(self, trainer, pl_module):
        if trainer.is_global_zero:
            replay(trainer, self.csv.open(resumed_at=pl_module.iteration),
                   lambda row: {f"train/{c}": float(row[c]) for c in self.columns})
            self._open = True
            flush_rows(trainer)  # the replayed rows, before any of this piece's

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.iteration % self.every == 0:
            pl_module.read_losses()
        self._write(trainer, pl_module)
        flush_rows(trainer)  # after the callbacks before this one logged this iteration

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        self._write(trainer, pl_module)  # not sent yet: the row may get more values

    def on_train_end(self, trainer, pl_module):
        pl_module.read_losses()
        self._write(trainer, pl_module)
        flush_rows(trainer)
        self.csv.close()

    def on_exception(self, trainer, pl_module, exception):
        if trainer.world_size == 1:  # a read is collective under DDP; a lone rank would wait
            pl_module.read_losses()
        self._write(trainer, pl_module)
        flush_rows(trainer)
        self.csv.close()

    def _write(self, trainer, pl_module) -> None:
        rows, pl_module.read = pl_module.read, []
        if not rows or not self._open:
            return
        self.csv.write_rows(rows)
        self._log(trainer, rows)

    def _log(self, trainer, rows: list[tuple[int, list[float]]]) -> None:
        for iteration, losses in rows:
            log_row(trainer, iteration, {f"train/{c}": v for c, v in zip(self.columns, losses)})


def replay(trainer, kept: list[dict], values_of) -> None:
    """The rows of a run's CSV that a resume kept (`IterationCsv.open`) and the W&B run's
    earlier pieces lack (`wandb_logger.held`), to the loggers, as `values_of(row)`."""
    start = bisect.bisect_right(kept, held(trainer), key=lambda row: int(row["iter"]))
    for row in kept[start:]:
        log_row(trainer, int(row["iter"]), values_of(row))


class IterationProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar, labelled and counted in GAN iterations, showing the losses last
    read back.

    One batch is one iteration and a run is one "epoch" (see `IterationBatchSampler`), so the
    bar's position is the iteration; a resumed run starts the bar at its iteration, which
    keeps the it/s figure right. Lightning redraws the bar and rebuilds its metrics after
    every batch; here tqdm's own rate limit decides when to redraw, and the losses change
    only when they are read back (`train.log_every`).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._shown = None  # the losses the bar's postfix shows

    def on_train_start(self, trainer, pl_module):
        super().on_train_start(trainer, pl_module)
        self._start_at(pl_module)

    def on_train_epoch_start(self, trainer, pl_module):
        super().on_train_epoch_start(trainer, pl_module)
        self._start_at(pl_module)

    def _start_at(self, pl_module) -> None:
        # Both hooks: a run resumed mid-epoch (every resume: a run is one epoch) gets
        # on_train_start only, a fresh run both, the second resetting the bar.
        bar = self.train_progress_bar
        total = self.total_train_batches  # inf when unknown, which tqdm wants as None
        bar.total = total if total is not None and math.isfinite(total) else None
        bar.set_description("GAN iteration")
        bar.initial = bar.n = pl_module.iteration
        self._shown = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        bar = self.train_progress_bar
        if bar is None or bar.disable:
            return
        if pl_module.latest_losses is not self._shown:
            self._shown = pl_module.latest_losses
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
        bar.update(pl_module.iteration - bar.n)  # redraws at most every tqdm.mininterval

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return {**metrics, **{f"train/{k}": v for k, v in pl_module.latest_losses.items()}}
