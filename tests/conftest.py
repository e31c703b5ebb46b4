"""Shared test helpers: compose the real root config, shrunk to a tiny CPU run."""

from __future__ import annotations

import csv
import os
import runpy
import signal
import sys
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_module
from hypothesis import settings

# Property tests draw the same examples on every run, so CI never passes or fails by chance;
# `pytest --hypothesis-profile=explore` searches wider, with fresh random examples.
settings.register_profile("ci", max_examples=40, derandomize=True, database=None)
settings.register_profile("explore", max_examples=400, derandomize=False)
settings.load_profile("ci")

import gansweep.rundir.names  # noqa: F401  (resolvers the root config uses)

CONF = Path(__file__).resolve().parents[1] / "conf"


def choices(group: str) -> list[str]:
    """The options of a config group as conf/ has them (norm, arch, dataset), so that tests
    cover a new one without being told."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


NORMS, ARCHS, DATASETS = choices("norm"), choices("arch"), choices("dataset")

# A run of a few iterations with short tests: seconds on a CPU. Any architecture.
TINY_RUN = [
    "train.iters=6", "train.ckpt_every=3", "train.sample_every=3",
    "recon.every=3", "recon.n_images=8", "recon.steps=5", "final.n_images=16", "final.steps=10",
    "trainer.enable_progress_bar=false", "wandb.mode=disabled",
    # the sample-quality test trains its digits classifier once per split (2 s, and every
    # test has its own split); tests/test_quality.py and the default runs' tests measure it
    "quality.metrics=[]",
]
# Tiny networks, per architecture.
TINY_NETS = {
    "dcgan": ["arch.generator.width=8", "arch.discriminator.width=8",
              "arch.generator.code_dim=16"],
    "resnet": ["arch.widths=[8,16]", "arch.blocks=1",
               "arch.generator.code_dim=16"],
}
TINY = TINY_RUN + TINY_NETS["dcgan"]


def compose_config(tmp_path, *overrides, tiny: bool = True):
    """The real root config with `overrides`, writing everything under `tmp_path`; with
    `tiny`, a short run with tiny networks of the architecture the overrides choose."""
    arch = next((o.split("=", 1)[1] for o in overrides if o.startswith("arch=")), "dcgan")
    shrink = TINY_RUN + TINY_NETS[arch] if tiny else []
    with initialize_config_module("gansweep.conf", version_base="1.3"):
        return compose(
            "config",
            overrides=[*shrink, f"paths.output_dir={tmp_path}", f"run_dir={tmp_path}/run",
                       f"paths.cache_dir={tmp_path}/cache", *overrides],
        )


def train_packed(tmp_path, seeds, *overrides, callbacks=(), tiny: bool = True) -> dict:
    """Trains `seeds` packed (`train.seeds`); {seed: its run directory}."""
    from gansweep.job import train
    from gansweep.rundir.names import seed_run_dirs

    cfg = compose_config(tmp_path, f"train.seeds=[{','.join(map(str, seeds))}]", *overrides,
                         tiny=tiny)
    dirs = train(cfg, callbacks=callbacks)
    assert dirs == seed_run_dirs(cfg)
    return dirs


def train_run(cfg, callbacks=()) -> Path:
    """Trains the one run `cfg` describes; its run directory."""
    from gansweep.job import train

    (run_dir,) = train(cfg, callbacks=callbacks).values()
    return run_dir


def numbers(run_dir: Path, name: str = "train.csv") -> torch.Tensor:
    """A run's CSV (train.csv, recon.csv) as numbers, one row per iteration, iteration first."""
    with open(Path(run_dir) / name, newline="") as f:
        return torch.tensor([[float(v) for v in row.values()] for row in csv.DictReader(f)])


def run_module(monkeypatch, capsys, module: str, *args) -> tuple[int, str]:
    """`python -m <module> *args` in this process, run as `-m` runs it: (exit code, what it
    printed). A message given to sys.exit is printed and exits 1, as Python does."""
    monkeypatch.setattr(sys, "argv", [module, *args])
    try:
        with warnings.catch_warnings():
            # an imported module run again as __main__: a fresh copy of it, as -m runs
            warnings.filterwarnings("ignore", ".*found in sys.modules", RuntimeWarning)
            runpy.run_module(module, run_name="__main__")
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
        if isinstance(code, str):
            print(code, file=sys.stderr)
            code = 1
    said = capsys.readouterr()
    return code, said.out + said.err


def run_gansweep(monkeypatch, capsys, cwd: Path, *args, code: int = 0) -> str:
    """`python -m gansweep *args` run in `cwd` (where it writes outputs/), in this process:
    what it printed, once its exit code is checked to be `code`."""
    monkeypatch.chdir(cwd)
    exit_code, said = run_module(monkeypatch, capsys, "gansweep", *args)
    assert exit_code == code, said[-3000:]
    return said


@pytest.fixture
def make_cfg(tmp_path):
    return lambda *overrides, **kw: compose_config(tmp_path, *overrides, **kw)


class CrashAt(L.Callback):
    """Simulates a crash: raises once the run reaches `iteration`."""

    def __init__(self, iteration: int):
        self.iteration = iteration

    def on_train_batch_end(self, trainer, pl_module, *args):
        if pl_module.iteration == self.iteration:
            raise RuntimeError("simulated crash")


class SignalAt(L.Callback):
    """Sends this process `signum` (default: SLURM's warning signal under submitit) during
    iteration `iteration`."""

    def __init__(self, iteration: int, signum: int = signal.SIGUSR2):
        self.iteration, self.signum = iteration, signum

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if pl_module.iteration + 1 == self.iteration:
            os.kill(os.getpid(), self.signum)


class PoisonGenerator(L.Callback):
    """Sets G's weights to NaN after `iteration` (in runs of the given `seeds`, default all):
    the next iteration's losses are NaN."""

    def __init__(self, iteration: int, seeds: tuple[int, ...] | None = None):
        self.iteration, self.seeds = iteration, seeds

    def on_train_batch_end(self, trainer, pl_module, *args):
        if pl_module.iteration == self.iteration and (
                self.seeds is None or pl_module.hparams.seed in self.seeds):
            with torch.no_grad():
                for p in pl_module.generator.parameters():
                    p.fill_(float("nan"))
