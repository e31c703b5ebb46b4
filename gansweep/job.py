"""A job: the runs of one grid point's seeds, trained together, each as it would be alone.

`train(cfg)` takes a composed config, so tests call it directly; `python -m gansweep` wraps
it with `@hydra.main` (see `__main__.py`). A job trains the seeds `train.seeds`, or just
`seed`, through one path:
1. lock every run directory (gansweep/rundir/lock.py) and skip each run that ended (its
   `summary.json` says finished or diverged);
2. group the others by the iteration their `checkpoints/last.ckpt` resumes at (0: afresh);
3. per group: build (data, model, each run's callbacks and W&B run, the trainer), fit, and
   end each run (final test, `summary.json`; gansweep/run.py).
One seed trains as the plain `GAN`; several train as one `PackedGAN` (gansweep/training/packed.py).
Only a run alone starts over after an early divergence (gansweep/rundir/restarts.py).
A signal stops the job as gansweep/training/signals.py says.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from gansweep import console
from gansweep.errors import GansweepError, build, naming
from gansweep.run import (
    RunCallbacks,
    attempt_summary,
    check_checkpoints,
    check_same_settings,
    finish,
    resume_iteration,
    run_callbacks,
    run_config,
    write_hydra_record,
)
from gansweep.rundir import lock, records, restarts
from gansweep.rundir.names import seed_run_dirs
from gansweep.training import capacity, signals
from gansweep.training.callbacks import (
    IterationProgressBar,
    RunModule,
    RunTrainer,
    atomic_save_checkpoint,
)
from gansweep.training.packed import (
    EachSeed,
    SeedCheckpointIO,
    packed_gan_factory,
    packed_resume_point,
)
from gansweep.training.trainer import make_trainer
from gansweep.training.wandb_logger import command_line_settings, log_summary, wandb_logger
from gansweep.validate import penalty_caveat, validate

if logging.getLogger().hasHandlers():
    # `import lightning` gives its logger a console handler of its own; under Hydra, whose
    # root handlers already print to the console and the run's log file, each message would
    # appear twice.
    for handler in list(logging.getLogger("lightning").handlers):
        logging.getLogger("lightning").removeHandler(handler)


def train(cfg: DictConfig, callbacks: Sequence[L.Callback] = ()) -> dict[int, Path]:
    """Trains the job `cfg` describes; returns {seed: its run directory}.

    `callbacks`: extra Lightning callbacks of the job's trainer. They see the job's module
    (the `GAN`, or the `PackedGAN` of all its seeds) and run after every run's own
    callbacks, so at iteration k they see k's checkpoints and rows written."""
    console.quiet()
    validate(cfg)  # bad settings fail here, before anything is locked, built or written
    if (caveat := penalty_caveat(cfg)) and rank_zero_only.rank == 0:
        # a warning, not a print: a sweep's job log keeps it beside the run it concerns
        logging.getLogger("gansweep").warning(f"gansweep: note: {caveat}")
    with signals.stop_at_once():
        dirs = run_dirs(cfg)
        with lock.hold(locked_dirs(cfg, dirs)):
            for start, seeds in unfinished_groups(cfg, dirs):
                train_group(cfg, {s: dirs[s] for s in seeds}, callbacks, start)
    return dirs


def packed_job(cfg: DictConfig) -> bool:
    return OmegaConf.select(cfg, "train.seeds") is not None


def run_dirs(cfg: DictConfig) -> dict[int, Path]:
    """{seed: its run directory}: the job's own for one run, else gansweep.rundir.names'."""
    return seed_run_dirs(cfg) if packed_job(cfg) else {cfg.seed: Path(cfg.run_dir)}


def locked_dirs(cfg: DictConfig, dirs: dict[int, Path]) -> list[Path]:
    """The directories the job's process holds (gansweep/rundir/lock.py): its runs', and a packed
    job's own (its resume point); on rank 0 only, as the ranks of a DDP job are one writer."""
    if rank_zero_only.rank != 0:
        return []
    return [Path(cfg.run_dir), *dirs.values()] if packed_job(cfg) else list(dirs.values())


def unfinished_groups(cfg: DictConfig, dirs: dict[int, Path]) -> list[tuple[int, list[int]]]:
    """[(iteration, seeds resuming there)], latest first, of the runs that did not end."""
    todo = []
    for seed, run_dir in dirs.items():
        restarts.complete_archive(run_dir)  # a kill may have stopped one half-way
        attempt = restarts.attempt_seed(seed, restarts.attempts_archived(run_dir))
        check_same_settings(run_dir, run_config(cfg, attempt, run_dir))
        done = records.read_result(run_dir)
        if done is None:
            todo.append(seed)
        elif rank_zero_only.rank == 0:
            records.clear_failure(run_dir)  # a sweep's refusal of other settings, now moot
            which = f"seed {seed}: " if packed_job(cfg) else ""
            print(f"gansweep: {which}run already {done['status']} at iteration "
                  f"{done['iters_done']}, skipped; outputs in {run_dir}")
    if len(todo) <= 1:  # nothing to group: its checkpoint is read when it resumes
        return [(0, todo)] if todo else []
    groups: dict[int, list[int]] = {}
    for seed in todo:
        groups.setdefault(resume_iteration(dirs[seed]), []).append(seed)
    return sorted(groups.items(), reverse=True)


class CopiesOutOfMemory(Exception):
    """A packed group's first iteration ran out of GPU memory."""


def train_group(cfg: DictConfig, dirs: dict[int, Path], callbacks, start: int) -> None:
    """The runs of `dirs` (all resuming at iteration `start`), attempt after attempt."""
    try:
        while train_attempt(cfg, dirs, callbacks, start) == "restart":
            start = 0
        return
    except CopiesOutOfMemory:
        pass  # measured below: out here the failed attempt's tensors are gone
    seeds = list(dirs)
    raise GansweepError(capacity.copies_do_not_fit(cfg, packed_gan_factory(cfg, seeds), seeds))


@dataclass
class SeedRun:
    """One run of a job: its config, directory, file writers, W&B run, and the module and
    trainer its callbacks see (with one seed, the job's own)."""
    config: DictConfig
    dir: Path
    writers: RunCallbacks
    logger: object
    module: RunModule | None = None
    trainer: RunTrainer | None = None


@dataclass
class Group:
    """What one attempt of a group of runs is made of, as `build_group` wires it."""
    data: L.LightningDataModule
    model: L.LightningModule
    runs: list[SeedRun]
    stopper: signals.StopOnSignal
    trainer: L.Trainer

    @property
    def packed(self) -> bool:
        return len(self.runs) > 1


def prepare_runs(cfg: DictConfig, dirs: dict[int, Path], attempt: int) -> dict[int, DictConfig]:
    """Each run's config, checked against its checkpoints and saved in its directory."""
    configs = {}
    for seed, run_dir in dirs.items():
        one = run_config(cfg, restarts.attempt_seed(seed, attempt), run_dir)
        check_checkpoints(run_dir, one.model)
        run_dir.mkdir(parents=True, exist_ok=True)
        with naming(run_dir / "config.yaml"):
            OmegaConf.save(one, run_dir / "config.yaml", resolve=True)
        if packed_job(cfg):  # Hydra wrote the job's record, not its seeds'
            write_hydra_record(Path(cfg.run_dir), run_dir, seed)
        records.clear_failure(run_dir)  # an earlier failure, fixed since
        configs[seed] = one
    return configs


def run_settings(cfg: DictConfig, seed: int) -> dict[str, str]:
    """The command-line settings W&B records for the run of `seed`: a packed seed's are
    those of `seed=<seed>` alone."""
    settings = command_line_settings()
    if not packed_job(cfg) or not settings:
        return settings
    return {**{k: v for k, v in settings.items() if k != "train.seeds"}, "seed": str(seed)}


def build_group(cfg: DictConfig, configs: dict[int, DictConfig], dirs: dict[int, Path],
                callbacks: Sequence[L.Callback] = ()) -> Group:
    """Data, model, each run's callbacks and W&B run, and the trainer (nothing trained)."""
    seeds = list(configs)
    first = configs[seeds[0]]
    # the global RNGs as a run seeds them; a packed seed's are seeded again for its copy
    L.seed_everything(first.seed, workers=True, verbose=False)
    if len(seeds) == 1:
        data = build(first.data)  # data errors surface here, before any training
        model = instantiate(first.model)
    else:
        data = build(cfg.data, seeds=seeds)
        model = packed_gan_factory(cfg, seeds)(len(seeds))
    runs = []
    for seed in seeds:
        shutil.copyfile(data.split_path, dirs[seed] / "split.json")  # each run keeps one
        runs.append(SeedRun(configs[seed], dirs[seed], run_callbacks(configs[seed], dirs[seed]),
                            wandb_logger(configs[seed], dirs[seed], run_settings(cfg, seed))))

    def save_every_live_run(trainer):
        for run in runs:
            if run.module.diverged_at is None:
                atomic_save_checkpoint(run.trainer, run.writers.last.path)

    where = runs[0].writers.last.path if len(runs) == 1 else "every live seed's last.ckpt"
    stopper = signals.StopOnSignal(where, cfg.train.log_every, save=save_every_live_run)
    if len(runs) == 1:
        own, plugins, logger = runs[0].writers.in_order(), [], runs[0].logger
    else:
        each = EachSeed(model, [run.writers.in_order() for run in runs],
                        [run.logger for run in runs])
        for run, module, seed_trainer in zip(runs, each.modules, each.trainers):
            run.module, run.trainer = module, seed_trainer
        own, plugins, logger = [each], [SeedCheckpointIO(each)], None
    # after the runs' own (`last` among them): at iteration k the stopper writes k's state
    trainer_callbacks = [*own, *callbacks, stopper]
    if cfg.trainer.enable_progress_bar:
        trainer_callbacks.append(IterationProgressBar())
    trainer = make_trainer(cfg, Path(cfg.run_dir), trainer_callbacks, logger, plugins)
    if len(runs) == 1:
        runs[0].module, runs[0].trainer = model, trainer
    return Group(data, model, runs, stopper, trainer)


def train_attempt(cfg: DictConfig, dirs: dict[int, Path], callbacks, start: int) -> str:
    """One attempt at the runs of `dirs`: "done", "preempted" or "restart" (a run alone that
    diverged early, gansweep/rundir/restarts.py)."""
    first_seed, first_dir = next(iter(dirs.items()))
    attempt = restarts.attempts_archived(first_dir) if len(dirs) == 1 else 0
    configs = prepare_runs(cfg, dirs, attempt)
    group = build_group(cfg, configs, dirs, callbacks)
    model, trainer, stopper = group.model, group.trainer, group.stopper
    resume = resume_point(group, cfg)
    try:
        try:
            trainer.fit(model, datamodule=group.data, ckpt_path=resume)
        except torch.OutOfMemoryError:
            if not group.packed or model.iteration > start or \
                    not capacity.raises_out_of_memory(trainer.strategy.root_device):
                raise
            raise CopiesOutOfMemory() from None
        # every rank sees the same divergence (losses are averaged over ranks first)
        restart = not group.packed and restarts.wanted(cfg.train, model.diverged_at, attempt)
        if trainer.is_global_zero and not stopper.stopped_by:
            for run in group.runs:
                summary = (attempt_summary(run.config, run.module, run.writers.recon)
                           if restart else finish(run.config, run.dir, group.data, run.module,
                                                  run.writers.recon, run.writers.quality))
                if run.logger:
                    log_summary(run.logger, summary, run.dir)
    finally:
        for run in group.runs:
            if run.logger:
                run.logger.experiment.finish()  # one W&B run per run, even when it fails
        if group.packed and resume:
            Path(resume).unlink(missing_ok=True)
    if stopper.stopped_by:
        stopper.after_fit(trainer)  # requeues under submitit, else raises Interrupted
        return "preempted"  # outside submitit (tests), and on other ranks
    if restart:
        if trainer.is_global_zero:
            moved_to = restarts.archive(first_dir, attempt, summary)
            print(f"gansweep: attempt {attempt} (seed {configs[first_seed].seed}) diverged at "
                  f"iteration {model.diverged_at}, within train.restart_on_early_divergence="
                  f"{cfg.train.restart_on_early_divergence}; its files are in {moved_to}; "
                  f"starting over with seed {restarts.attempt_seed(first_seed, attempt + 1)}")
        trainer.strategy.barrier("restart")  # the others start once the directory is clear
        return "restart"
    return "done"


def resume_point(group: Group, cfg: DictConfig) -> Path | None:
    """The checkpoint the group resumes from: a run's last.ckpt, or its seeds' packed."""
    lasts = [run.writers.last.path for run in group.runs]
    if group.packed:
        return packed_resume_point(group.model, Path(cfg.run_dir), lasts)
    return lasts[0] if lasts[0].exists() else None
