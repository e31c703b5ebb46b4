"""One writer per run directory: a process trains a run only while it holds the directory's
lock, `<run dir>/run.lock`; a second process stops at once with one line naming the holder.

The lock is the kernel's (`flock` on the lock file, held open for the whole job), not the
file's presence, so a holder that dies any way (kill -9, a crash, a dead node) leaves nothing
that blocks the next one: its locks go with it. The file only says who holds it (host, pid,
since when), for the message. The holder removes it when done, while still holding it, and a
process that locks a file checks that it is still the one at the path, so two processes can
never both hold one.

Where it works: local file systems, and network ones whose `flock` reaches the server
(Linux NFS emulates it with NFS byte-range locks; a lock of a node that died is released
when its lease runs out, about 90 s on NFSv4; GPFS; Lustre mounted with `flock`). On a file
system that refuses locks (Lustre without `flock`, some FUSE mounts) the run trains unguarded
with a warning. Lustre's `localflock` and NFS mounted with `nolock` lock per node only: there
two nodes are not kept apart.

Under DDP the ranks of one job are one writer: rank 0 holds the lock (`job.locked_dirs`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Iterable, Iterator

from gansweep.errors import GansweepError

LOCK = "run.lock"
UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}

log = logging.getLogger(__name__)


class RunDirectoryBusy(GansweepError):
    """Another live process is training this run directory."""


def _holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:  # being written this instant
        holder = {}
    if "pid" not in holder:
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["since"]))
    return f"pid {holder['pid']} on host {holder['host']} (since {since})"


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def acquire(run_dir: Path) -> int | None:
    """Locks `run_dir` for this process: the lock file's descriptor, or None where the file
    system has no locks. Raises `RunDirectoryBusy` if another process holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise RunDirectoryBusy(
                f"{run_dir} is being trained by {holder}; its files were not touched: wait "
                f"for that one to end (or stop it), then run this command again") from None
        except OSError as error:
            os.close(fd)
            if error.errno not in UNSUPPORTED:
                raise
            log.warning(f"gansweep: the file system of {run_dir} has no locks "
                        f"({os.strerror(error.errno)}): nothing keeps a second process from "
                        f"training this run directory at the same time")
            return None
        if _same_file(fd, path):  # not removed by a holder that ended since our open
            break
        os.close(fd)
    record = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()})
    os.ftruncate(fd, 0)
    os.pwrite(fd, record.encode(), 0)
    return fd


def release(run_dir: Path, fd: int | None) -> None:
    if fd is None:
        return
    (run_dir / LOCK).unlink(missing_ok=True)  # while still held: see the module's docstring
    os.close(fd)


@contextlib.contextmanager
def hold(run_dirs: Iterable[Path]) -> Iterator[None]:
    """Holds the lock of every directory in `run_dirs` until the block ends; none if one is
    busy."""
    held: list[tuple[Path, int | None]] = []
    try:
        for run_dir in sorted(set(map(Path, run_dirs))):
            held.append((run_dir, acquire(run_dir)))
        yield
    finally:
        for run_dir, fd in reversed(held):
            release(run_dir, fd)
