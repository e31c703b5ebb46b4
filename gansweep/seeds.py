"""Several seeds of one grid point trained in one job as one packed network (`train.seeds`).

    python -m gansweep -m norm=vanilla,bn,wn 'train.seeds=[0,1,2,3]'

trains, in each job, the four seeds as one packed G and one packed D (gansweep/packing.py),
and each seed comes out as the run `seed=<s>` alone would make: its own directory, named as
that command names it, with config.yaml, split.json, train.csv, recon.csv, samples,
checkpoints (in the unpacked format), summary.json and its own W&B run. The report, the
evaluator, the skip of finished runs and the resume of unfinished ones see no difference.

A packed seed is the run it would be alone:
- initialisation: each copy is built right after seeding torch with its seed, as a run is;
- codes: each copy draws from its own code generator;
- batches: each copy's batch of iteration i is the one `IterationBatchSampler` gives its
  seed (one loader serves the K batches of an iteration together);
- optimiser: RMSProp over the stacked parameters updates each element from its own state;
- losses: each copy's loss is its own batch's mean (`gan.batch_loss`), and their sum is
  what is derived, so each copy gets the gradient it would get alone.
Each seed has the callbacks a run has (`train.build_run`), and they see their seed through
two small views, `SeedModule` and `SeedTrainer`: its iteration and losses, its G (unpacked
on demand), its W&B run, and a checkpoint that is its part of the packed one.

A seed whose loss turns non-finite stops there, as a run does: nothing of it is saved from
that iteration on, its summary says diverged; the other seeds go on (a copy's NaNs never
reach another copy: every layer computes each copy apart).
"""

from __future__ import annotations

import copy
import math
import shutil
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from gansweep import capacity, lock, records, signals
from gansweep.callbacks import IterationProgressBar, atomic_save_checkpoint
from gansweep.errors import GansweepError, build
from gansweep.gan import GAN, LOSS_COLUMNS
from gansweep.packing import Packed, _flat
from gansweep.runs import seed_dirname, seed_overrides, seed_run_dirs
from gansweep.tracking import command_line_settings, wandb_logger
from gansweep.train import check_checkpoints, finish, make_trainer, run_callbacks

PACKED_CHECKPOINT = "packed.ckpt"  # the job's resume point, packed from its seeds' last.ckpt


class PackedGAN(GAN):
    """The GAN of `seeds`, one copy per seed, trained as one (see the module's docstring)."""

    def __init__(self, arch: dict, norm: str, image_size: int, channels: int,
                 optimizer: dict, seeds: list[int], n_samples: int = 64,
                 compile: str | None = None):
        super().__init__(arch, norm, image_size, channels, optimizer, seed=seeds[0],
                         n_samples=n_samples, compile=compile)
        self.seeds = list(seeds)
        self.hparams["seeds"] = self.seeds  # beside GAN's (its seed: the first one's)
        alone = []
        for seed in self.seeds:
            torch.manual_seed(seed)  # as a run seeds torch before it builds its networks
            alone.append(GAN(arch, norm, image_size, channels, optimizer, seed=seed,
                             n_samples=n_samples))
        self.generator = Packed([gan.generator for gan in alone])
        self.discriminator = Packed([gan.discriminator for gan in alone])
        self._alone = alone  # a plain list, not submodules: each seed's G, unpacked on demand
        self.code_rngs = [gan.code_rng for gan in alone]
        self.fixed_codes = torch.stack([gan.fixed_codes for gan in alone])
        self.diverged: list[int | None] = [None] * len(seeds)
        self.reads: list[list] = [[] for _ in seeds]
        self.latest: list[dict] = [{} for _ in seeds]

    def sample_codes(self, n: int) -> torch.Tensor:
        """(K, n, code_dim): each copy's codes from its own generator."""
        return self.to_device(torch.stack([
            torch.randn(n, self.generator.definition.code_dim, generator=rng)
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
        elif self._trainer is not None:
            self.trainer.should_stop = True
        return bool(live)

    def generator_of(self, k: int) -> torch.nn.Module:
        """Seed k's G as an unpacked network holding its current weights."""
        like = next(self.generator.parameters())  # the packed one's device and precision
        generator = self._alone[k].generator.to(like.device, like.dtype)
        generator.load_state_dict(self.generator.copy_state(k))
        return generator

    @torch.no_grad()
    def samples_of(self, k: int) -> torch.Tensor:
        generator = self.generator_of(k).eval()
        return generator(self.fixed_codes[k].to(self.device))

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


# --- One seed's part of a packed checkpoint, and back -------------------------------------

def _stacked_names(module: PackedGAN) -> dict[str, str]:
    """{unpacked state_dict key: packed state_dict key} of G and D."""
    names = {}
    for prefix, packed in (("generator.", module.generator),
                           ("discriminator.", module.discriminator)):
        params, buffers = packed.stacked()
        names.update({prefix + n: prefix + _flat(n) for n in [*params, *buffers]})
    return names


def _optimizer_slice(state: dict, k: int) -> dict:
    per_param = {i: {key: v[k].clone() if torch.is_tensor(v) and v.dim() else v
                     for key, v in s.items()} for i, s in state["state"].items()}
    return {"state": per_param, "param_groups": copy.deepcopy(state["param_groups"])}


def _optimizer_stack(states: list[dict]) -> dict:
    first = states[0]
    per_param = {i: {key: torch.stack([s["state"][i][key] for s in states])
                     if torch.is_tensor(v) and v.dim() else v for key, v in entry.items()}
                 for i, entry in first["state"].items()}
    return {"state": per_param, "param_groups": copy.deepcopy(first["param_groups"])}


def unpack_checkpoint(module: PackedGAN, packed: dict, k: int) -> dict:
    """Seed k's checkpoint, as its run alone writes it, from the packed module's."""
    names = _stacked_names(module)
    state = packed["gansweep"]
    hyper = {key: v for key, v in packed["hyper_parameters"].items() if key != "seeds"}
    return {**packed,
            "state_dict": {name: packed["state_dict"][key][k].clone()
                           for name, key in names.items()},
            "optimizer_states": [_optimizer_slice(s, k) for s in packed["optimizer_states"]],
            "hyper_parameters": {**hyper, "seed": module.seeds[k]},
            "gansweep": {"iteration": state["iteration"], "code_rng": state["code_rng"][k],
                         "diverged_at": state["diverged_at"][k]},
            "callbacks": packed["callbacks"].get(EachSeed.STATE_KEY, {}).get("seeds", [{}])[k]}


def pack_checkpoints(module: PackedGAN, checkpoints: list[dict]) -> dict:
    """The packed module's checkpoint from its seeds' (all at one iteration)."""
    names = _stacked_names(module)
    first = checkpoints[0]
    hyper = {key: v for key, v in first["hyper_parameters"].items() if key != "seed"}
    return {**first,
            "state_dict": {key: torch.stack([c["state_dict"][name] for c in checkpoints])
                           for name, key in names.items()},
            "optimizer_states": [_optimizer_stack([c["optimizer_states"][i]
                                                   for c in checkpoints])
                                 for i in range(len(first["optimizer_states"]))],
            "hyper_parameters": {**hyper, "seeds": module.seeds},
            "gansweep": {"iteration": first["gansweep"]["iteration"], "seeds": module.seeds,
                         "code_rng": [c["gansweep"]["code_rng"] for c in checkpoints],
                         "diverged_at": [c["gansweep"].get("diverged_at")
                                         for c in checkpoints]},
            "callbacks": {EachSeed.STATE_KEY: {"seeds": [c.get("callbacks", {})
                                                         for c in checkpoints]}}}


# --- What a run's callbacks see of their seed ---------------------------------------------

class SeedModule:
    """Seed k of a PackedGAN, as a run's callbacks use their GAN (gansweep/callbacks.py)."""

    def __init__(self, packed: PackedGAN, k: int):
        self.packed, self.k = packed, k

    @property
    def compile_seconds(self) -> float | None:
        return self.packed.compile_seconds

    @property
    def iteration(self) -> int:
        at = self.packed.diverged[self.k]
        return self.packed.iteration if at is None else at

    @property
    def diverged_at(self) -> int | None:
        return self.packed.diverged[self.k]

    @diverged_at.setter
    def diverged_at(self, iteration: int | None) -> None:  # a running test found NaN
        self.packed.diverged[self.k] = iteration

    @property
    def read(self) -> list:
        return self.packed.reads[self.k]

    @read.setter
    def read(self, rows: list) -> None:
        self.packed.reads[self.k] = rows

    @property
    def latest_losses(self) -> dict:
        return self.packed.latest[self.k]

    @property
    def generator(self) -> torch.nn.Module:
        return self.packed.generator_of(self.k)

    def samples(self) -> torch.Tensor:
        return self.packed.samples_of(self.k)

    def read_losses(self) -> bool:
        self.packed.read_losses()
        return self.packed.diverged[self.k] is None


class SeedTrainer:
    """The Trainer as one seed's callbacks use it: its W&B run, its checkpoint."""

    def __init__(self, trainer: L.Trainer, module: SeedModule, callbacks: list, logger):
        self.trainer, self.module, self.callbacks = trainer, module, callbacks
        self.loggers = [logger] if logger else []

    def __getattr__(self, name):  # is_global_zero, strategy, datamodule, global_step, ...
        return getattr(self.trainer, name)

    @property
    def should_stop(self) -> bool:
        return self.trainer.should_stop

    @should_stop.setter
    def should_stop(self, stop: bool) -> None:
        # a seed stops alone (its diverged_at is set); the job stops when none is live
        if stop and all(at is not None for at in self.module.packed.diverged):
            self.trainer.should_stop = True

    def save_checkpoint(self, path, weights_only: bool = False) -> None:
        packed = self.trainer._checkpoint_connector.dump_checkpoint(weights_only)
        checkpoint = unpack_checkpoint(self.module.packed, packed, self.module.k)
        for callback in self.callbacks:
            callback.on_save_checkpoint(self, self.module, checkpoint)
        checkpoint["callbacks"] = callback_states(self.callbacks)
        if self.trainer.is_global_zero:
            self.trainer.strategy.checkpoint_io.save_checkpoint(checkpoint, path)


def callback_states(callbacks: list) -> dict:
    """{state_key: state} of the callbacks that have one, as Lightning's checkpoints hold them."""
    return {c.state_key: state for c in callbacks if (state := c.state_dict())}


class EachSeed(L.Callback):
    """Runs each seed's callbacks (a run's own, `train.build_run`) on its views."""

    STATE_KEY = "EachSeed"

    def __init__(self, seeds: list[tuple[SeedModule, list, object]]):
        self.seeds = seeds  # (module view, callbacks, W&B logger or None) per seed
        self.trainers: list[SeedTrainer] = []

    @property
    def state_key(self) -> str:
        return self.STATE_KEY

    def _each(self, hook: str, trainer, *args) -> None:
        if not self.trainers:
            self.trainers = [SeedTrainer(trainer, view, callbacks, logger)
                             for view, callbacks, logger in self.seeds]
        for seed_trainer, (view, callbacks, _) in zip(self.trainers, self.seeds):
            for callback in callbacks:
                getattr(callback, hook)(seed_trainer, view, *args)

    def setup(self, trainer, pl_module, stage):
        self._each("setup", trainer, stage)

    def on_train_start(self, trainer, pl_module):
        self._each("on_train_start", trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._each("on_train_batch_end", trainer, outputs, batch, batch_idx)

    def on_train_end(self, trainer, pl_module):
        self._each("on_train_end", trainer)

    def on_exception(self, trainer, pl_module, exception):
        self._each("on_exception", trainer, exception)

    def state_dict(self) -> dict:
        return {"seeds": [callback_states(callbacks) for _, callbacks, _ in self.seeds]}

    def load_state_dict(self, state_dict: dict) -> None:
        for (_, callbacks, _), saved in zip(self.seeds, state_dict["seeds"]):
            for callback in callbacks:
                if callback.state_key in saved:
                    callback.load_state_dict(saved[callback.state_key])


# --- Each seed's directory and config -------------------------------------------------------

def seed_config(cfg: DictConfig, seed: int, run_dir: Path) -> DictConfig:
    """The config `seed=<seed>` alone would run with, in `run_dir`."""
    one = copy.deepcopy(cfg)
    with open_dict(one):
        one.seed, one.train.seeds, one.run_dir = seed, None, str(run_dir)
    return one


def write_failures(cfg: DictConfig, error: Exception) -> None:
    """failed.json for the job's run, or for each of its packed seeds without a result (with
    the `.hydra/` record the table reads its command line from)."""
    if OmegaConf.select(cfg, "train.seeds") is None:
        records.write_failure(Path(cfg.run_dir), cfg, error)
        return
    for seed, run_dir in seed_run_dirs(cfg).items():
        if records.read_summary(run_dir) is None:
            records.write_failure(run_dir, seed_config(cfg, seed, run_dir), error)
            write_hydra_record(Path(cfg.run_dir), run_dir, seed)


def write_hydra_record(job_dir: Path, seed_dir: Path, seed: int) -> None:
    """The job's `.hydra/` as `seed=<seed>` alone would have it (the report reads a run's
    command line from it)."""
    saved = Path(job_dir) / ".hydra"
    if not (saved / "hydra.yaml").exists():
        return
    target = Path(seed_dir) / ".hydra"
    target.mkdir(parents=True, exist_ok=True)
    hydra = OmegaConf.load(saved / "hydra.yaml")
    task = seed_overrides(list(hydra.hydra.overrides.task), seed)
    hydra.hydra.overrides.task = task
    hydra.hydra.job.override_dirname = seed_dirname(hydra.hydra, seed)
    hydra.hydra.runtime.output_dir = str(seed_dir)
    OmegaConf.save(hydra, target / "hydra.yaml")
    OmegaConf.save(OmegaConf.create(task), target / "overrides.yaml")
    config = OmegaConf.load(saved / "config.yaml")
    config.seed, config.train.seeds = seed, None
    OmegaConf.save(config, target / "config.yaml")


# --- The job ----------------------------------------------------------------------------------

def train_seeds(cfg: DictConfig, callbacks=()) -> dict[int, Path]:
    """Trains `cfg.train.seeds` packed; returns {seed: its run directory}. Seeds whose run
    ended (finished or diverged) are skipped; the others resume from their last.ckpt,
    packed in groups of seeds that stopped at the same iteration."""
    dirs = seed_run_dirs(cfg)
    with lock.hold([Path(cfg.run_dir), *dirs.values()]):
        return _train_seeds(cfg, dirs, callbacks)


def _train_seeds(cfg: DictConfig, dirs: dict[int, Path], callbacks) -> dict[int, Path]:
    todo = {}
    for seed, run_dir in dirs.items():
        done = records.read_result(run_dir)
        if done:
            print(f"gansweep: seed {seed}: run already {done['status']} at iteration "
                  f"{done['iters_done']}, skipped; outputs in {run_dir}")
        else:
            todo.setdefault(_resume_iteration(run_dir), []).append(seed)
    for iteration in sorted(todo, reverse=True):
        seeds = todo[iteration]
        try:
            _train_group(cfg, seeds, dirs, callbacks, iteration)
            continue
        except CopiesOutOfMemory:
            pass  # measured below: out here the failed attempt's tensors are gone
        factory = packed_gan_factory(cfg, seeds)
        raise GansweepError(capacity.copies_do_not_fit(cfg, factory, seeds))
    return dirs


class CopiesOutOfMemory(Exception):
    """A packed group's first iteration ran out of GPU memory."""


def packed_gan_factory(cfg: DictConfig, seeds: list[int]):
    """copies -> the PackedGAN of the first `copies` of `seeds`, as the job builds it."""
    m = cfg.model
    return lambda copies: PackedGAN(m.arch, m.norm, m.image_size, m.channels, m.optimizer,
                                    seeds=seeds[:copies], compile=m.compile)


def _resume_iteration(run_dir: Path) -> int:
    last = Path(run_dir) / "checkpoints" / "last.ckpt"
    if not last.exists():
        return 0
    return records.read_checkpoint(last)["gansweep"]["iteration"]


def _train_group(cfg: DictConfig, seeds: list[int], dirs: dict[int, Path], callbacks,
                 start: int) -> None:
    """The seeds of `seeds` (all at iteration `start`) trained as one packed GAN."""
    job_dir = Path(cfg.run_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    configs = {s: seed_config(cfg, s, dirs[s]) for s in seeds}
    for seed, one in configs.items():
        check_checkpoints(dirs[seed], one.model)
        dirs[seed].mkdir(parents=True, exist_ok=True)
        OmegaConf.save(one, dirs[seed] / "config.yaml", resolve=True)
        write_hydra_record(job_dir, dirs[seed], seed)
        records.clear_failure(dirs[seed])

    data = build(cfg.data, seeds=seeds)
    for seed in seeds:
        shutil.copyfile(data.split_path, dirs[seed] / "split.json")
    model = packed_gan_factory(cfg, seeds)(len(seeds))
    settings = {k: v for k, v in command_line_settings().items() if k != "train.seeds"}
    per_seed, writers = [], {}
    for k, seed in enumerate(seeds):
        writers[seed] = run_callbacks(configs[seed], dirs[seed])
        logger = wandb_logger(configs[seed], dirs[seed],
                              {**settings, "seed": str(seed)} if settings else {})
        per_seed.append((SeedModule(model, k), writers[seed].in_order(), logger))
    each = EachSeed(per_seed)

    def save_every_live_seed(trainer):
        for seed_trainer, seed in zip(each.trainers, seeds):
            if seed_trainer.module.diverged_at is None:
                atomic_save_checkpoint(seed_trainer, writers[seed].last.path)

    stopper = signals.StopOnSignal("every live seed's checkpoints/last.ckpt",
                                   cfg.train.log_every, save=save_every_live_seed)
    trainer_callbacks = [each, *callbacks, stopper]
    if cfg.trainer.enable_progress_bar:
        trainer_callbacks.append(IterationProgressBar())
    trainer = make_trainer(cfg, job_dir, trainer_callbacks, logger=None)
    resume = _packed_resume_point(model, job_dir, [writers[s].last.path for s in seeds])
    try:
        try:
            trainer.fit(model, datamodule=data, ckpt_path=resume)
        except torch.OutOfMemoryError:
            device = trainer.strategy.root_device
            if model.iteration > start or len(seeds) == 1 or \
                    not capacity.raises_out_of_memory(device):
                raise
            raise CopiesOutOfMemory() from None
        if not stopper.stopped_by:
            for seed_trainer, seed in zip(each.trainers, seeds):
                summary = finish(configs[seed], dirs[seed], data, seed_trainer.module,
                                 writers[seed].recon, seed_trainer)
                for logger in seed_trainer.loggers:
                    logger.experiment.summary.update(summary)
    finally:
        for _, _, logger in per_seed:
            if logger:
                logger.experiment.finish()
        if resume:
            Path(resume).unlink(missing_ok=True)
    stopper.after_fit(trainer)  # requeues under submitit, or raises Interrupted


def _packed_resume_point(model: PackedGAN, job_dir: Path, lasts: list[Path]) -> str | None:
    """The seeds' last.ckpt packed into one checkpoint for Lightning to resume from, or None
    when they start afresh."""
    if not all(p.exists() for p in lasts):
        return None
    checkpoints = [records.read_checkpoint(p, mmap=False) for p in lasts]
    path = job_dir / PACKED_CHECKPOINT
    torch.save(pack_checkpoints(model, checkpoints), path)
    return str(path)
