"""Restarting a run that diverged in its first iterations, with a new seed.

The paper: "WN runs may fail in the first few iterations; a restart fixes it". With
`train.restart_on_early_divergence=N`, a run that diverges at iteration N or earlier starts
over from scratch with the next seed, up to `train.max_restarts` times. Nothing of a failed
attempt is lost: its files move to `<run dir>/restarts/<k>/` (config, CSVs, checkpoints,
samples, W&B files, and a `summary.json` saying where it diverged), and the final
`summary.json` lists the attempts under `restarts`.

Attempt k uses seed `seed + k * SEED_STRIDE`, so restarts never land on the seed of another
grid point of a seed sweep. The attempt under way is the number of archived attempts, which
is how a run killed during attempt k resumes attempt k, with attempt k's seed.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig

from gansweep.rundir import records

SEED_STRIDE = 1_000_000
ARCHIVE = records.ARCHIVE
# Hydra's record of the command and the job's log belong to the run as a whole
KEPT = {ARCHIVE, ".hydra"}


def attempt_seed(seed: int, attempt: int) -> int:
    return seed + attempt * SEED_STRIDE


def attempts_archived(run_dir: Path) -> int:
    archive = Path(run_dir) / ARCHIVE
    return sum(1 for p in archive.iterdir() if p.name.isdigit()) if archive.is_dir() else 0


def history(run_dir: Path) -> list[dict]:
    """What each archived attempt was: its seed, where it diverged, where its files are."""
    attempts = []
    for k in range(attempts_archived(run_dir)):
        summary = records.read_summary(Path(run_dir) / ARCHIVE / str(k))
        attempts.append({"seed": summary["seed"], "diverged_at": summary["diverged_at"],
                         "dir": f"{ARCHIVE}/{k}"})
    return attempts


def wanted(train: DictConfig, diverged_at: int | None, attempt: int) -> bool:
    """Whether an attempt that diverged at `diverged_at` (None: it did not) starts over."""
    return (diverged_at is not None and diverged_at <= train.restart_on_early_divergence
            and attempt < train.max_restarts)


def archive(run_dir: Path, attempt: int, summary: dict) -> Path:
    """Move attempt `attempt`'s files to `restarts/<attempt>/`, leaving the run directory
    ready for a fresh start. A kill half-way is finished by `complete_archive`."""
    run_dir = Path(run_dir)
    partial = run_dir / ARCHIVE / f"{attempt}.partial"
    partial.mkdir(parents=True, exist_ok=True)
    records.write_summary(partial, summary)
    return complete_archive(run_dir)


def complete_archive(run_dir: Path) -> Path | None:
    """Finish an archive a kill interrupted (every file moves, or none is left behind)."""
    archive_dir = Path(run_dir) / ARCHIVE
    partials = list(archive_dir.glob("*.partial")) if archive_dir.is_dir() else []
    for partial in partials:
        for path in Path(run_dir).iterdir():
            if path.name not in KEPT and not path.name.endswith(".log"):
                _move(path, partial / path.name)
        _move(partial, archive_dir / partial.name.removesuffix(".partial"))
    return archive_dir / partials[-1].name.removesuffix(".partial") if partials else None


def _move(src: Path, dst: Path) -> None:
    try:
        os.replace(src, dst)
    except FileNotFoundError:  # another rank of the same job moved it first
        pass
