"""Several seeds of one grid point trained as one packed network (`train.seeds`).

    python -m gansweep -m norm=vanilla,bn,wn 'train.seeds=[0,1,2,3]'

trains, in each job, the four seeds as one packed G and one packed D
(gansweep/training/stacking.py), and each seed comes out as the run `seed=<s>` alone would make:
its own directory, named as that command names it, with config.yaml, split.json, train.csv,
recon.csv, samples, checkpoints (in the unpacked format), summary.json and its own W&B run. The
report, the evaluator, the skip of finished runs and the resume of unfinished ones see no
difference.

A packed seed is the run it would be alone:
- initialisation: each copy is built right after seeding the global RNGs with its seed
  (`L.seed_everything`), as a run is;
- codes: each copy draws from its own code generator;
- batches: each copy's batch of iteration i is the one `IterationBatchSampler` gives its
  seed (one loader serves the K batches of an iteration together);
- optimiser: RMSProp over the stacked parameters updates each element from its own state;
- losses: each copy's loss is its own batch's mean (`gansweep.method.losses`), and their sum is
  what is derived, so each copy gets the gradient it would get alone.
Each seed has the callbacks a run has (`run.run_callbacks`); `EachSeed` calls them with
the seed's views of the job, `SeedModule` and `SeedTrainer`, which are what the callbacks'
contract (`callbacks.RunModule`, `callbacks.RunTrainer`) asks and nothing more.

A seed whose loss turns non-finite stops there, as a run does: nothing of it is saved from
that iteration on, its summary says diverged; the other seeds go on (a copy's NaNs never
reach another copy: every layer computes each copy apart).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig

from gansweep.method.layers import slope_names
from gansweep.rundir import records
from gansweep.training.gan import GAN, LOSS_COLUMNS
from gansweep.training.stacking import (
    SEED_CALLBACKS,
    Packed,
    pack_checkpoints,
    state_names,
    unpack_checkpoint,
)

PACKED_CHECKPOINT = "packed.ckpt"  # the job's resume point, packed from its seeds' last.ckpt


class PackedGAN(GAN):
    """The GAN of `seeds`, one copy per seed, trained as one (see the module's docstring)."""

    def __init__(self, seeds: list[int], **gan_args):
        """`gan_args`: the `GAN`'s own arguments, but its seed (each copy has its own)."""
        super().__init__(seed=seeds[0], **gan_args)
        self.seeds = list(seeds)
        self.hparams["seeds"] = self.seeds  # beside GAN's (its seed: the first one's)
        alone = []
        for seed in self.seeds:
            # the global RNGs as a run seeds them before it builds its networks
            L.seed_everything(seed, workers=True, verbose=False)
            alone.append(GAN(**{**gan_args, "seed": seed, "compile": None}))
        self.generator = Packed([gan.generator for gan in alone])
        self.discriminator = Packed([gan.discriminator for gan in alone])
        self.code_rngs = [gan.code_rng for gan in alone]
        self.fixed_codes = torch.stack([gan.fixed_codes for gan in alone])
        self.diverged: list[int | None] = [None] * len(seeds)
        self.reads: list[list] = [[] for _ in seeds]
        self.latest: list[dict] = [{} for _ in seeds]

    def slopes_of(self, network: Packed) -> list[torch.Tensor]:
        """The stacked TPReLU slopes of a packed network (each copy's, clamped together)."""
        params = network.stacked()[0]
        return [params[name] for name in slope_names(network.definition)]

    def sample_codes(self, n: int) -> torch.Tensor:
        """(K, n, code_dim): each copy's codes from its own generator."""
        return self.draw(torch.randn, n, self.generator.definition.code_dim)

    def draw(self, sampler, n: int, *shape: int) -> torch.Tensor:
        """(K, n, *shape): each copy's draws from its own generator."""
        return self.to_device(torch.stack([sampler(n, *shape, generator=rng)
                                           for rng in self.code_rngs]))

    def training_step(self, batch, batch_idx: int) -> None:
        images = batch[0]  # the K copies' batches, one after another (PackedBatchSampler)
        super().training_step((images.view(len(self.seeds), -1, *images.shape[1:]),),
                              batch_idx)

    def read_losses(self) -> bool:
        """Brings the unread iterations' losses back (one sync) into each seed's `reads`; a
        seed's first non-finite row is its last (`diverged`). True while any seed is live;
        when none is, training stops."""
        if self._unread:
            rows = torch.stack(self._unread).tolist()  # (iterations, K, len(LOSS_COLUMNS))
            first = self.iteration - len(self._unread) + 1
            self._unread = []
            for iteration, per_copy in enumerate(rows, start=first):
                for k, losses in enumerate(per_copy):
                    if self.diverged[k] is None:
                        self.reads[k].append((iteration, losses))
                        self.latest[k] = dict(zip(LOSS_COLUMNS, losses))
                        if not all(map(math.isfinite, losses)):
                            self.diverged[k] = iteration
        live = [k for k, at in enumerate(self.diverged) if at is None]
        if live:  # the progress bar's figures: the mean over the live seeds
            self.latest_losses = {c: sum(self.latest[k].get(c, 0.0) for k in live) / len(live)
                                  for c in LOSS_COLUMNS}
        elif (trainer := self.attached_trainer()) is not None:
            trainer.should_stop = True
        return bool(live)

    @contextlib.contextmanager
    def generator_of(self, k: int) -> Iterator[torch.nn.Module]:
        """Seed k's G as an unpacked network holding its current weights, on the packed
        one's device, for the block only: the job keeps one set of weights per seed."""
        generator = self.generator.copy_network(k)
        try:
            yield generator
        finally:
            del generator

    @torch.no_grad()
    def samples_of(self, k: int) -> torch.Tensor:
        with self.generator_of(k) as generator:
            return generator.eval()(self.fixed_codes[k].to(self.device))

    def state_names(self) -> dict[str, str]:
        """{a seed's state_dict key: this module's}, for packing and unpacking checkpoints."""
        return state_names({"generator": self.generator, "discriminator": self.discriminator})

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["gansweep"] = {"iteration": self.iteration, "seeds": self.seeds,
                                  "code_rng": [rng.get_state() for rng in self.code_rngs],
                                  "diverged_at": list(self.diverged)}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["gansweep"]
        self.iteration = state["iteration"]
        for rng, saved in zip(self.code_rngs, state["code_rng"]):
            rng.set_state(saved)
        self.diverged = list(state["diverged_at"])


def packed_gan_factory(cfg: DictConfig, seeds: list[int]):
    """copies -> the PackedGAN of the first `copies` of `seeds`, as the job builds it."""
    # the config's model node holds the GAN's arguments (and Hydra's own keys)
    gan_args = {k: v for k, v in cfg.model.items() if not k.startswith("_") and k != "seed"}
    return lambda copies: PackedGAN(seeds=seeds[:copies], **gan_args)


def packed_resume_point(model: PackedGAN, job_dir: Path, lasts: list[Path]) -> Path | None:
    """The seeds' last.ckpt packed into one checkpoint for Lightning to resume from, or None
    when they start afresh."""
    if not all(p.exists() for p in lasts):
        return None
    checkpoints = [records.read_checkpoint(p, mmap=False) for p in lasts]
    path = job_dir / PACKED_CHECKPOINT
    torch.save(pack_checkpoints(checkpoints, model.state_names()), path)
    return path


# --- What a run's callbacks see of their seed ---------------------------------------------

class SeedModule:
    """Seed k of a PackedGAN as a `callbacks.RunModule`."""

    def __init__(self, packed: PackedGAN, k: int):
        self._packed, self._k = packed, k

    @property
    def iteration(self) -> int:
        at = self._packed.diverged[self._k]
        return self._packed.iteration if at is None else at

    @property
    def diverged_at(self) -> int | None:
        return self._packed.diverged[self._k]

    @diverged_at.setter
    def diverged_at(self, iteration: int | None) -> None:  # a running test found NaN
        self._packed.diverged[self._k] = iteration

    @property
    def read(self) -> list:
        return self._packed.reads[self._k]

    @read.setter
    def read(self, rows: list) -> None:
        self._packed.reads[self._k] = rows

    @property
    def latest_losses(self) -> dict:
        return self._packed.latest[self._k]

    def read_losses(self) -> bool:
        self._packed.read_losses()
        return self._packed.diverged[self._k] is None

    def generator_alone(self) -> contextlib.AbstractContextManager[torch.nn.Module]:
        return self._packed.generator_of(self._k)

    def samples(self) -> torch.Tensor:
        return self._packed.samples_of(self._k)


class SeedTrainer:
    """The packed job's Trainer as one seed's `callbacks.RunTrainer`: its own W&B run, its
    own checkpoint, its own stop; the rest is the job's."""

    def __init__(self, each: EachSeed, k: int, logger):
        self._each, self._k = each, k
        self.loggers = [logger] if logger else []

    @property
    def _job(self) -> L.Trainer:
        return self._each.packed.trainer

    @property
    def is_global_zero(self) -> bool:
        return self._job.is_global_zero

    @property
    def world_size(self) -> int:
        return self._job.world_size

    @property
    def global_step(self) -> int:
        return self._job.global_step

    @property
    def datamodule(self):
        return self._job.datamodule

    @property
    def strategy(self):
        return self._job.strategy

    @property
    def should_stop(self) -> bool:
        return self._job.should_stop

    @should_stop.setter
    def should_stop(self, stop: bool) -> None:
        # a seed stops alone (its diverged_at is set); the job stops when none is live
        if stop and all(at is not None for at in self._each.packed.diverged):
            self._job.should_stop = True

    def save_checkpoint(self, filepath, weights_only: bool = False) -> None:
        """Lightning's checkpoint of the job, of which `SeedCheckpointIO` writes this seed's
        part (and `EachSeed` calls this seed's callbacks' `on_save_checkpoint`)."""
        with self._each.saving(self._k):
            self._job.save_checkpoint(filepath, weights_only=weights_only)


class EachSeed(L.Callback):
    """Runs each seed's callbacks (a run's own, `run.run_callbacks`) with its views:
    `modules[k]` and `trainers[k]`."""

    def __init__(self, packed: PackedGAN, callbacks: list[list[L.Callback]], loggers: list):
        self.packed, self.callbacks = packed, callbacks
        self.modules = [SeedModule(packed, k) for k in range(len(callbacks))]
        self.trainers = [SeedTrainer(self, k, logger) for k, logger in enumerate(loggers)]
        self.saving_seed: int | None = None  # whose checkpoint is being written

    @property
    def state_key(self) -> str:
        return SEED_CALLBACKS

    @contextlib.contextmanager
    def saving(self, k: int) -> Iterator[None]:
        self.saving_seed = k
        try:
            yield
        finally:
            self.saving_seed = None

    def _each(self, hook: str, *args) -> None:
        for module, trainer, callbacks in zip(self.modules, self.trainers, self.callbacks):
            for callback in callbacks:
                getattr(callback, hook)(trainer, module, *args)

    def setup(self, trainer, pl_module, stage):
        self._each("setup", stage)

    def on_train_start(self, trainer, pl_module):
        self._each("on_train_start")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._each("on_train_batch_end", outputs, batch, batch_idx)

    def on_train_end(self, trainer, pl_module):
        self._each("on_train_end")

    def on_exception(self, trainer, pl_module, exception):
        self._each("on_exception", exception)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        k = self.saving_seed
        if k is not None:
            for callback in self.callbacks[k]:
                callback.on_save_checkpoint(self.trainers[k], self.modules[k], checkpoint)

    def state_dict(self) -> dict:
        return {"seeds": [{c.state_key: state for c in callbacks if (state := c.state_dict())}
                          for callbacks in self.callbacks]}

    def load_state_dict(self, state_dict: dict) -> None:
        for callbacks, saved in zip(self.callbacks, state_dict["seeds"]):
            for callback in callbacks:
                if callback.state_key in saved:
                    callback.load_state_dict(saved[callback.state_key])


class SeedCheckpointIO(TorchCheckpointIO):
    """Writes a seed's checkpoint, as its run alone writes it, from the job's.

    Lightning has no public way to have a checkpoint's dict without writing it; its
    CheckpointIO plugin is the public place every checkpoint passes through on its way to
    the file, so a seed's checkpoint is the job's, unpacked here (`stacking.unpack_checkpoint`)."""

    def __init__(self, each: EachSeed):
        super().__init__()
        self.each = each

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        k = self.each.saving_seed
        if k is not None:
            checkpoint = unpack_checkpoint(checkpoint, k, self.each.packed.state_names())
        super().save_checkpoint(checkpoint, path, storage_options)
