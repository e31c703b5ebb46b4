"""One run (one seed of a job): its config, the callbacks that write its files, the checks
before it resumes, and how it ends (final test, `summary.json`, the closing line).

A job (gansweep/job.py) trains one run alone, or several packed (gansweep/training/packed.py); each
run is made and ends the same way, so its files do not depend on how it was trained.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import lightning as L
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from gansweep.evaluate import load_generator, save_comparison
from gansweep.method.reconstruction import ReconSettings, reconstruct
from gansweep.rundir import records, restarts
from gansweep.rundir.names import seed_dirname, seed_overrides, seed_run_dirs, unchanging_keys
from gansweep.quality.evaluation import quality_settings
from gansweep.training.callbacks import (
    IterationCheckpoint,
    LossHistory,
    RunModule,
    RunningRecon,
    SampleGrids,
    SampleQuality,
)
from gansweep.training.gan import LOSS_COLUMNS, differing_networks
from gansweep.validate import ConfigError


def run_config(cfg: DictConfig, seed: int, run_dir: Path) -> DictConfig:
    """The config the run `seed=<seed>` alone has: `cfg`'s, with its seed and, for a seed of
    a packed job (`train.seeds`), its own directory."""
    one = copy.deepcopy(cfg)
    with open_dict(one):
        one.seed = seed
        if one.train.seeds is not None:
            one.train.seeds, one.run_dir = None, str(run_dir)
    return one


def progress_label(cfg: DictConfig, test: str) -> str | None:
    """The label of a reconstruction test's progress bar, shown where the run's is."""
    return f"{test} test" if cfg.trainer.enable_progress_bar else None


def recon_settings(cfg: DictConfig) -> ReconSettings:
    """The paper's reconstruction protocol with `cfg`'s steps, lr and chunk size."""
    return ReconSettings(steps=cfg.steps, lr=cfg.lr, chunk_size=cfg.chunk_size)


@dataclass
class RunCallbacks:
    """The callbacks that write a run's files, in the order they must run."""
    recon: RunningRecon
    samples: SampleGrids
    losses: LossHistory
    last: IterationCheckpoint  # last: a checkpoint at iteration k then holds all of k's work
    quality: SampleQuality | None = None  # None: quality.metrics=[] (nothing built)

    def in_order(self) -> list[L.Callback]:
        return [self.recon, *([self.quality] if self.quality else []), self.samples,
                self.losses, self.last]


def run_callbacks(cfg: DictConfig, run_dir: Path) -> RunCallbacks:
    ckpt_dir, iters = run_dir / "checkpoints", cfg.train.iters
    quality = None
    if cfg.quality.metrics:  # else nothing of it is built (or imported: a lazy module)
        quality = SampleQuality(cfg.quality.every, iters,
                                quality_settings(cfg.quality, cfg.dataset.name), cfg.seed,
                                run_dir / records.QUALITY_CSV)
    return RunCallbacks(
        RunningRecon(cfg.recon.every, iters, cfg.recon.n_images, recon_settings(cfg.recon),
                     records.recon_history(run_dir), ckpt_dir / "best.ckpt",
                     progress_label(cfg, "running")),
        SampleGrids(run_dir / "samples", cfg.train.sample_every, iters),
        LossHistory(run_dir / records.TRAIN_CSV, LOSS_COLUMNS, cfg.train.log_every),
        IterationCheckpoint(ckpt_dir / "last.ckpt", cfg.train.ckpt_every, iters), quality)


# --- Before a resume ------------------------------------------------------------------------

def check_resumable(checkpoint: Path, model_cfg: DictConfig) -> None:
    """A run directory's checkpoint must be of the networks this config builds; otherwise
    say so, instead of a state_dict size mismatch from deep inside torch."""
    # mmap: only the small hyperparameters are read here; fit() loads the weights later
    saved = records.read_checkpoint(checkpoint)["hyper_parameters"]
    differs = differing_networks(saved, OmegaConf.to_container(model_cfg, resolve=True))
    if differs:
        raise ConfigError(
            f"{checkpoint} holds a model with {differs[0]}, but this config builds "
            f"{differs[1]}; that run directory belongs to other settings: run with the "
            f"original ones, or give this run a directory of its own (run_dir=...)")


# Where a run's files go, not what they hold: never part of what a run directory was started
# with (a moved output or data tree is the same run).
LOCATIONS = ("run_dir", "paths", "data.split_path")
_ABSENT = object()
_REFERENCE = re.compile(r"\$\{[\w.]+\}")  # `${train.lr}`: another setting's value


def chosen_settings(node: DictConfig, prefix: str = "") -> dict[str, tuple[object, str]]:
    """{dotted key: (resolved value, the setting it refers to or "")} of the settings under
    `node`. A plain reference to a value (`train.lr: ${arch.lr}`) is kept with the key it
    refers to; one to a whole node (`model.arch: ${arch}`) is left to that node's own keys;
    a resolver's value (dataset=folder's name, made from its root) is a value."""
    chosen, raw = {}, OmegaConf.to_container(node, resolve=False)
    for key in node:
        path = f"{prefix}{key}"
        if OmegaConf.is_missing(node, key):
            continue
        reference = _REFERENCE.fullmatch(raw[key]) if isinstance(raw[key], str) else None
        value = node[key]
        if isinstance(value, DictConfig):
            if not reference:  # a group's node referred to (model.arch) is compared there
                chosen.update(chosen_settings(value, f"{path}."))
            continue
        if isinstance(value, ListConfig):
            value = OmegaConf.to_container(value, resolve=True)
        chosen[path] = (value, raw[key][2:-1] if reference else "")
    return chosen


def _within(key: str, prefixes) -> bool:
    return any(key == p or key.startswith(f"{p}.") for p in prefixes)


def changed_settings(saved: DictConfig, run_cfg: DictConfig,
                     ended: bool) -> list[tuple[str, object, object]]:
    """(key, saved value, `run_cfg`'s value) of the result-changing settings whose value
    differs from the run's saved config (config.yaml, resolved when saved). Keys the saved
    config lacks (a run older than the setting) are not judged. A reference to another setting is
    named only where that setting itself does not differ (`train.lr` given on the first command
    line, left to `${arch.lr}` on this one). train.iters may change for a run that has not
    ended: its batches and codes are functions of the iteration alone, so going on to
    another last iteration gives what that train.iters would have given from the start.
    A `_target_` names where the code that builds a node lives, not a setting: it changes
    when gansweep's modules move, and what it builds is chosen by the settings beside it."""
    unchanging = [*unchanging_keys(), *LOCATIONS, *(() if ended else ("train.iters",))]
    chosen = chosen_settings(run_cfg)
    changed = {}
    for key, (value, refers_to) in chosen.items():
        if _within(key, unchanging) or (refers_to and _within(refers_to, unchanging)) \
                or key.rpartition(".")[2] == "_target_":
            continue
        before = OmegaConf.select(saved, key, default=_ABSENT)
        if isinstance(before, (DictConfig, ListConfig)):
            before = OmegaConf.to_container(before, resolve=True)
        if before is not _ABSENT and before != value:
            changed[key] = (refers_to, before, value)
    return [(key, before, value) for key, (refers_to, before, value) in changed.items()
            if not (refers_to and any(_within(other, [refers_to]) for other in changed))]


def check_same_settings(run_dir: Path, run_cfg: DictConfig) -> None:
    """A run directory holds one run. A command that would resume it, or skip it as ended,
    with result-changing settings other than those it was started with is refused before
    anything is written, in one line naming each setting and both values; so is a
    train.iters below the iteration its last checkpoint reached. Otherwise its config.yaml
    would say one thing and its rows another. A run that left nothing to resume or skip
    (it failed before its first checkpoint) is no one's. `run_cfg`: the run's own config
    (`run_config`, with the seed of its current attempt)."""
    run_dir = Path(run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    ended = (run_dir / records.SUMMARY).exists()
    if not (run_dir / records.CONFIG).exists() or not (ended or last.exists()):
        return
    saved = records.read_config(run_dir)
    changed = changed_settings(saved, run_cfg, ended)
    if changed:
        def listed(which: int) -> str:
            return ", ".join(f"{item[0]}={item[which]}" for item in changed)

        hint = (" (the run directory's name leaves dataset.root out, so give the runs of each "
                "folder a name of their own: dataset.name=...)"
                if "dataset.name" in [key for key, _, _ in changed] else "")
        raise ConfigError(
            f"{run_dir} holds a run started with {listed(1)}, but "
            f"this command gives {listed(2)}: run it with the settings it was started "
            f"with, or give this run a directory of its own (hydra.run.dir=...){hint}")
    at = resume_iteration(run_dir) if not ended and last.exists() else 0
    if at > run_cfg.train.iters:
        raise ConfigError(
            f"{last} is at iteration {at}, beyond train.iters={run_cfg.train.iters}: resume "
            f"it with train.iters={at} or more, or give this run a directory of its own "
            f"(hydra.run.dir=...)")


def check_checkpoints(run_dir: Path, model_cfg: DictConfig) -> None:
    """Before a resume: last.ckpt is of this config's networks, and both checkpoints read
    back (best.ckpt is only read by the final test, after all the training)."""
    checkpoints = run_dir / "checkpoints"
    if (checkpoints / "last.ckpt").exists():
        check_resumable(checkpoints / "last.ckpt", model_cfg)
    if (checkpoints / "best.ckpt").exists():
        records.read_checkpoint(checkpoints / "best.ckpt")


def resume_iteration(run_dir: Path) -> int:
    """The iteration the run's last.ckpt resumes at (0: it starts afresh)."""
    last = Path(run_dir) / "checkpoints" / "last.ckpt"
    if not last.exists():
        return 0
    return records.read_checkpoint(last)["gansweep"]["iteration"]


# --- The records of a packed seed that Hydra writes for a job alone -------------------------

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


def write_failures(cfg: DictConfig, error: Exception) -> None:
    """failed.json for the job's run, or for each of its packed seeds without a result (with
    the `.hydra/` record the table reads its command line from)."""
    if OmegaConf.select(cfg, "train.seeds") is None:
        records.write_failure(Path(cfg.run_dir), cfg, error)
        return
    for seed, run_dir in seed_run_dirs(cfg).items():
        if records.read_summary(run_dir) is None:
            records.write_failure(run_dir, run_config(cfg, seed, run_dir), error)
            write_hydra_record(Path(cfg.run_dir), run_dir, seed)


# --- How a run ends -------------------------------------------------------------------------

def progress(model: RunModule, recon: RunningRecon) -> dict:
    """How far a run got, and its best running test (None, not inf, when no running test
    came before a divergence: JSON has no inf)."""
    return {"iters_done": model.iteration, "best_iter": recon.best_iter,
            "running_loss": recon.best_loss if recon.best_iter is not None else None}


def attempt_summary(cfg: DictConfig, model: RunModule, recon: RunningRecon) -> dict:
    """What an attempt given up for a restart reached (no final test: it is not a result)."""
    return {"status": "diverged", "restarted": True, "diverged_at": model.diverged_at,
            **records.identity(cfg), **progress(model, recon)}


def quality_summary(quality: SampleQuality | None, final: dict | None) -> dict:
    """The sample-quality part of a summary: the features' name, each metric's best value
    over training and its iteration, and its value in the final test (`final`)."""
    if quality is None or quality.test is None:
        return {}
    summary = {"quality_features": quality.test.name}
    for column in quality.test.columns():
        metric = column.split("[")[0]
        if metric.endswith("_std"):
            continue
        value, iteration = quality.best.get(column, (None, None))
        summary.update({f"best_{metric}": value, f"best_{metric}_iter": iteration,
                        f"final_{metric}": (final or {}).get(column)})
    return summary


def finish(cfg: DictConfig, run_dir: Path, data, model: RunModule, recon: RunningRecon,
           quality: SampleQuality | None = None) -> dict:
    """The final test, `summary.json`, and the closing line of the run."""
    best = run_dir / "checkpoints" / "best.ckpt"
    final = final_test(cfg, data, best, run_dir, quality) if best.exists() else \
        {"final_loss": None, "final_iter": None, "final_n_images": 0,
         "final_steps": cfg.final.steps, **quality_summary(quality, None)}
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
                f"{recon.best_iter}" if recon.best_iter is not None
                else "no running test before it")
        print(f"gansweep: run diverged at iteration {model.diverged_at} (NaN/inf); {best}; "
              f"checkpoints and history kept in {run_dir}")
    else:
        print(f"gansweep: run finished at iteration {model.iteration}: best running "
              f"reconstruction error {recon.best_loss:.6f} at iteration {recon.best_iter}, "
              f"final {final['final_loss']:.6f}; outputs in {run_dir}")
    return summary


def final_test(cfg: DictConfig, data, best: Path, run_dir: Path,
               quality: SampleQuality | None = None) -> dict:
    """The paper's final test: the best checkpoint on the final set, with more z steps;
    `final_recon.png` shows the first targets above their reconstructions. With sample
    quality on, that G's FID/KID too."""
    generator, iteration = load_generator(best)
    images = data.heldout_images(cfg.final.n_images)
    rec = reconstruct(generator, images, recon_settings(cfg.final), progress_label(cfg, "final"))
    save_comparison(images, rec, run_dir / "final_recon.png")
    sampled = quality.test(generator) if quality is not None and quality.test else None
    return {"final_loss": rec.mean, "final_iter": iteration, "final_n_images": len(images),
            "final_steps": cfg.final.steps, **quality_summary(quality, sampled)}
