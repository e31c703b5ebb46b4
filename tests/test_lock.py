"""One writer per run directory (gansweep/rundir/lock.py): a second process stops at once naming the
holder, a holder killed with SIGKILL blocks nothing, a file system without locks warns."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys

import pytest

from gansweep.job import train
from gansweep.rundir import lock
from gansweep.rundir.lock import RunDirectoryBusy

HOLD = """
import sys, time
from pathlib import Path
from gansweep.rundir import lock
lock.acquire(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path):
    """Another live process holding the lock of tmp_path/run."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "run")],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    yield process
    process.kill()
    process.wait()


def test_a_second_process_stops_at_once_naming_the_holder(holder, tmp_path):
    with pytest.raises(RunDirectoryBusy) as busy:
        lock.acquire(tmp_path / "run")
    message = str(busy.value)
    assert str(tmp_path / "run") in message
    assert f"pid {holder.pid} on host {socket.gethostname()}" in message


def test_a_lock_left_by_a_killed_process_blocks_nothing(holder, tmp_path):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (tmp_path / "run" / lock.LOCK).exists()  # SIGKILL left the file behind
    fd = lock.acquire(tmp_path / "run")
    lock.release(tmp_path / "run", fd)
    assert not (tmp_path / "run" / lock.LOCK).exists()  # a clean end leaves no file


def test_a_released_lock_can_be_taken_again_and_a_held_one_cannot_twice(tmp_path):
    with lock.hold([tmp_path / "a", tmp_path / "b"]):
        with pytest.raises(RunDirectoryBusy):
            lock.acquire(tmp_path / "b")  # another open file: the same as another process
    with lock.hold([tmp_path / "b"]):
        pass


def test_train_on_a_run_directory_another_process_trains_touches_nothing(holder, make_cfg,
                                                                          tmp_path):
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*")}
    with pytest.raises(RunDirectoryBusy, match=f"pid {holder.pid}"):
        train(make_cfg())
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*")} == before


def test_a_packed_job_holds_each_of_its_seeds_directories(make_cfg, tmp_path):
    from gansweep.rundir.names import seed_run_dirs

    cfg = make_cfg("train.seeds=[0,1]")
    with lock.hold([seed_run_dirs(cfg)[1]]):  # seed 1 is another job's
        with pytest.raises(RunDirectoryBusy, match="seed=1"):
            train(cfg)
    assert not (seed_run_dirs(cfg)[0] / "train.csv").exists()


def test_other_ranks_of_a_ddp_job_take_no_lock(holder, make_cfg, monkeypatch):
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    from gansweep.job import locked_dirs, run_dirs

    for cfg in (make_cfg(), make_cfg("train.seeds=[0,1]")):
        assert len(locked_dirs(cfg, run_dirs(cfg))) >= 1  # rank 0 holds them for the job
        monkeypatch.setattr(rank_zero_only, "rank", 1)
        assert locked_dirs(cfg, run_dirs(cfg)) == []
        with lock.hold(locked_dirs(cfg, run_dirs(cfg))):  # the holder's run: no conflict
            pass
        monkeypatch.setattr(rank_zero_only, "rank", 0)


def test_a_file_system_without_locks_trains_unguarded_with_a_warning(tmp_path, monkeypatch,
                                                                     caplog):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)  # as on Lustre mounted without flock
    with caplog.at_level(logging.WARNING):
        assert lock.acquire(tmp_path / "run") is None
    assert "has no locks" in caplog.text and str(tmp_path / "run") in caplog.text


def test_the_holders_record_is_read_while_it_is_being_written(tmp_path):
    path = tmp_path / "run"
    path.mkdir()
    (path / lock.LOCK).write_text('{"host": "n')  # torn: the holder is writing it now
    fd = os.open(path / lock.LOCK, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(RunDirectoryBusy, match="being trained by another process"):
            lock.acquire(path)
    finally:
        os.close(fd)
    lock.release(path, lock.acquire(path))
