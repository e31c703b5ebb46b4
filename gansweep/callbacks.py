"""Callbacks that write a run's outputs, keyed on the GAN iteration (not `global_step`).

- `IterationCheckpoint`: `checkpoints/last.ckpt` every N iterations and at the end.
  Lightning's `ModelCheckpoint` counts optimizer steps (two per iteration under manual
  optimisation) and special-cases manual optimisation with warnings, so the trigger is ours;
  the checkpoint itself is Lightning's full `trainer.save_checkpoint` (model, optimisers,
  loops, callbacks), written to a temporary file and renamed so a kill never leaves a torn one.
- `SampleGrids`: `samples/iter_XXXXXX.png` from fixed codes, via torchvision's `save_image`.
- `LossHistory`: `train.csv`, one row per iteration. On resume it keeps only rows up to the
  restored iteration, so the file continues without gaps or duplicates.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import lightning as L
from torchvision.utils import save_image


def atomic_save_checkpoint(trainer: L.Trainer, path: Path) -> None:
    """`trainer.save_checkpoint` to `path` via a temporary file (every rank must call it)."""
    tmp = path.with_name(path.name + ".tmp")
    trainer.save_checkpoint(tmp, weights_only=False)
    if trainer.is_global_zero:
        os.replace(tmp, path)
    trainer.strategy.barrier("atomic_save_checkpoint")


class IterationCheckpoint(L.Callback):
    def __init__(self, dirpath: str | Path, every: int):
        self.dirpath, self.every = Path(dirpath), every

    @property
    def last(self) -> Path:
        return self.dirpath / "last.ckpt"

    def on_train_start(self, trainer, pl_module):
        self.dirpath.mkdir(parents=True, exist_ok=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.iteration % self.every == 0:
            atomic_save_checkpoint(trainer, self.last)

    def on_train_end(self, trainer, pl_module):
        atomic_save_checkpoint(trainer, self.last)


class SampleGrids(L.Callback):
    def __init__(self, dirpath: str | Path, every: int):
        self.dirpath, self.every = Path(dirpath), every

    def save(self, pl_module) -> Path:
        path = self.dirpath / f"iter_{pl_module.iteration:06d}.png"
        if pl_module.trainer.is_global_zero:
            self.dirpath.mkdir(parents=True, exist_ok=True)
            images = pl_module.samples()
            save_image(images, path, nrow=int(len(images) ** 0.5), padding=2, pad_value=0.5)
        return path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.iteration % self.every == 0:
            self.save(pl_module)

    def on_train_end(self, trainer, pl_module):
        self.save(pl_module)


class LossHistory(L.Callback):
    """Appends the dict that `training_step` returns to a CSV, one row per iteration."""

    def __init__(self, path: str | Path, columns: list[str]):
        self.path, self.columns = Path(path), ["iter", *columns]
        self._file = None

    def on_train_start(self, trainer, pl_module):
        if not trainer.is_global_zero:
            return
        keep_rows_up_to(self.path, pl_module.iteration, self.columns)
        self._file = open(self.path, "a", newline="", buffering=1)
        self._writer = csv.writer(self._file)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._file is None:
            return
        values = [f"{float(outputs[c]):.6g}" for c in self.columns[1:]]
        self._writer.writerow([pl_module.iteration, *values])

    def on_train_end(self, trainer, pl_module):
        self.close()

    def on_exception(self, trainer, pl_module, exception):
        self.close()

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None


def keep_rows_up_to(path: Path, iteration: int, columns: list[str]) -> None:
    """Rewrite a per-iteration CSV with its header and only rows with iter <= `iteration`.

    Drops rows written after the checkpoint being resumed and a torn last line from a kill.
    Written to a temporary file and renamed, so a kill here loses nothing either.
    """
    rows = []
    if path.exists():
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if None in row.values() or None in row:  # torn line
                    continue
                if row.get("iter", "").isdigit() and int(row["iter"]) <= iteration:
                    rows.append([row[c] for c in columns])
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)
    os.replace(tmp, path)
