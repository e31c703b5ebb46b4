"""What gansweep's command lines share: a user's mistake ends in one line and exit code 1,
never a traceback. A bug is not a user's mistake: its traceback is the report."""

from __future__ import annotations

import argparse
import errno
import shutil
import sys
from pathlib import Path
from typing import Callable

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from gansweep.errors import GansweepError

MIN_FREE = 1024 * 1024  # bytes a command needs free where its output goes, to start at all

# what to do about a file-system error, by its errno
_FIX = {
    errno.ENOSPC: "free some space there, or write elsewhere (paths.output_dir)",
    errno.EDQUOT: "your disk quota is used up: free some, or write elsewhere (paths.output_dir)",
    errno.EROFS: "that file system is read-only: write elsewhere (paths.output_dir)",
    errno.EACCES: "you have no permission there: fix the permissions, or use another path",
    errno.EPERM: "you have no permission there: fix the permissions, or use another path",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a file stands where a directory should: check the path",
    errno.EISDIR: "a directory stands where a file should: check the path",
}


def describe_os_error(error: OSError) -> str:
    """'<path>: <cause>; <what to do>' for a file-system error."""
    where = error.filename or "a file"
    if error.filename2:
        where = f"{where} -> {error.filename2}"
    cause = error.strerror or str(error)
    fix = _FIX.get(error.errno)
    return f"{where}: {cause}" + f"; {fix}" * bool(fix)


def run_command(main: Callable, argv=None):
    """Runs a command line's `main`; a user's error ends the process in one line."""
    try:
        return main(argv)
    except GansweepError as error:
        sys.exit(f"gansweep: {error}")
    except OSError as error:  # a disk full, a read-only or foreign path: not a bug
        sys.exit(f"gansweep: {describe_os_error(error)}")


def at_least(kind: type, low, strict: bool, what: str):
    """An argparse type: a `kind` >= `low` (> with `strict`), described as `what`."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value != value or value < low or strict and value == low:  # NaN
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value
    return parse


positive_int = at_least(int, 0, True, "a whole number > 0")
non_negative_int = at_least(int, 0, False, "a whole number >= 0")
positive_float = at_least(float, 0.0, True, "a number > 0")


class WritableOutputs(Callback):
    """Hydra callback: where the run's (or the sweep's) directory cannot be made, one line
    and exit 1, before Hydra tries and fails with a traceback."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        # the run directory's name reads ${hydra:...}, which needs Hydra's config set (as
        # run_job sets it next); given back after, as run_job gives back what it found
        hydra = HydraConfig.instance()
        before = hydra.cfg
        hydra.set_config(config)
        try:
            directory = config.hydra.run.dir
        finally:
            hydra.cfg = before
        self._make(directory)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self._make(config.hydra.sweep.dir)

    @staticmethod
    def _make(directory: str) -> None:
        try:
            Path(directory).mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(directory).free
        except OSError as error:
            sys.exit(f"gansweep: cannot make the output directory: {describe_os_error(error)}")
        # Hydra writes its .hydra/ record next, where a full disk ends in its traceback; the
        # run's own files then need far more (a checkpoint alone is megabytes)
        if free < MIN_FREE:
            sys.exit(f"gansweep: {directory}: only {free // 1024} KiB free on its disk, less "
                     f"than a run's first files need; {_FIX[errno.ENOSPC]}")
