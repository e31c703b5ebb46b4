"""Errors the user can fix. Their messages say what is wrong and how to fix it, so the
command line prints them without a traceback."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Iterator

from hydra.errors import InstantiationException
from hydra.utils import instantiate


class GansweepError(Exception):
    """A problem with the user's data, configuration or files; the message is the help.

    Raised in a DataLoader worker (an image that cannot be decoded), it comes back to the
    main process through torch's `ExceptionWrapper.reraise`, which builds it anew from a
    message that wraps the worker's whole traceback around the help; the help alone is
    kept, so the user still reads one line naming the file."""

    def __init__(self, message: object = "", *args):
        super().__init__(_help_from_worker(message) if isinstance(message, str) else message,
                         *args)


# torch's wrapping: "Caught BadImage in DataLoader worker process 0.\nOriginal Traceback
# (most recent call last):\n ...\ngansweep.data.sets.BadImage: <the help>"
_FROM_WORKER = re.compile(r"Caught \w+ in DataLoader worker process \d+\.\nOriginal Traceback")
_LAST_LINE = re.compile(r"[\w.]+: (.*)")


def _help_from_worker(message: str) -> str:
    if not _FROM_WORKER.match(message):
        return message
    last = [line for line in message.splitlines() if line.strip()][-1]
    found = _LAST_LINE.fullmatch(last)
    return found.group(1) if found else last


class DamagedFile(GansweepError):
    """A run's file that cannot be read back."""


def first_line(error: BaseException, limit: int = 120) -> str:
    """An error's message, short: torch's can run over many lines."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= limit else text[:limit] + "..."


# what moving a damaged file away does, by name
_WITHOUT = {
    "summary.json": "the run's final test then runs again from its last checkpoint",
    "failed.json": "it only records that an earlier attempt failed",
    "last.ckpt": "the run then trains from its first iteration",
    "best.ckpt": "the run then has no final test unless a later running test beats its best",
    "train.csv": "the rows up to the last checkpoint are then lost; training goes on",
    "recon.csv": "the running tests up to the last checkpoint are then lost; training goes on",
}
SPLIT_REMADE = "the split is then made anew from its seed: the same seed gives the same split"


def damaged(path: Path, cause: str, intact: str = "", without: str | None = None) -> DamagedFile:
    """The error for `path`, which cannot be read back for `cause`; `without`: what moving
    it away does (by default, known by the file's name)."""
    path = Path(path)
    without = _WITHOUT.get(path.name, "") if without is None else without
    return DamagedFile(f"{path} cannot be read ({cause}); move it away"
                       + f" ({without})" * bool(without) + f" or restore it{intact}")


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """An OSError raised while writing `path` that names no file gets `path`: a full disk
    shows on a buffered write's flush or close, whose error carries no file name."""
    try:
        yield
    except OSError as error:
        if error.filename is None:
            error.filename = str(path)
        raise


def build(node, **kwargs):
    """`hydra.utils.instantiate`, but a `GansweepError` or an `OSError` (a path that cannot be
    written or read: the split, the decoded-image cache) raised inside comes out as itself,
    rather than wrapped in Hydra's InstantiationException, whose message drops the path."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        while cause is not None and not isinstance(cause, (GansweepError, OSError)):
            cause = cause.__cause__
        if cause is None:
            raise
        raise cause from None
