"""No traceback for a user's mistake at any entry point: bad values, file-system errors
(disk full, read-only, a file where a directory should be) end in one line and exit 1."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY, run_module

from gansweep.cli import describe_os_error, run_command
from gansweep.rundir import records

QUICK = [*TINY, "train.iters=2", "recon.every=2", "train.ckpt_every=2", "train.sample_every=2"]


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", "/data/run/summary.json")


def test_a_file_system_error_is_one_line_naming_the_path_and_the_fix():
    line = describe_os_error(OSError(errno.EROFS, "Read-only file system", "/ro/run"))
    assert line == ("/ro/run: Read-only file system; that file system is read-only: write "
                    "elsewhere (paths.output_dir)")
    with pytest.raises(SystemExit) as exit_:
        run_command(lambda argv: disk_full())
    assert exit_.value.code.startswith("gansweep: /data/run/summary.json: No space left on "
                                       "device; free some space there")


def test_a_disk_full_during_a_run_ends_it_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(records, "write_summary", disk_full)
    code, said = run_module(monkeypatch, capsys, "gansweep", *QUICK,
                            f"paths.output_dir={tmp_path}")
    assert code == 1 and "Traceback" not in said
    assert "gansweep: /data/run/summary.json: No space left on device" in said


def test_a_disk_full_in_a_sweep_fails_that_run_and_the_others_go_on(tmp_path, monkeypatch,
                                                                   capsys):
    real = records.write_summary

    def full_for_bn(run_dir, summary):
        if summary["norm"] == "bn":
            disk_full()
        real(run_dir, summary)

    monkeypatch.setattr(records, "write_summary", full_for_bn)
    code, said = run_module(monkeypatch, capsys, "gansweep", "-m", *QUICK,
                            f"paths.output_dir={tmp_path}", "norm=bn,wn")
    assert code == 1  # the sweep reports its failed run, after its table
    (failed,) = tmp_path.glob("sweeps/*/*norm=bn,*/failed.json")
    assert "No space left on device" in failed.read_text()
    assert list(tmp_path.glob("sweeps/*/*norm=wn,*/summary.json"))


@pytest.mark.parametrize("setting, made", [("paths.split_dir", "splits"),
                                           ("paths.cache_dir", "cache/decoded")])
def test_a_path_hydra_instantiates_the_data_with_that_cannot_be_made_is_one_line(
        tmp_path, monkeypatch, capsys, setting, made):
    """The split and the decoded-image cache are made while Hydra instantiates the data;
    Hydra's InstantiationException wrapped the OSError and its message dropped the path."""
    from gansweep.data.fakes import write_folder

    (tmp_path / "a_file").write_text("")
    root = write_folder(tmp_path / "images", n=12)
    target = "splits" if setting == "paths.split_dir" else "cache"
    code, said = run_module(monkeypatch, capsys, "gansweep", *QUICK,
                            f"paths.output_dir={tmp_path}", "dataset=folder",
                            f"dataset.root={root}", "dataset.holdout=4", "recon.n_images=2",
                            "final.n_images=4", f"{setting}={tmp_path}/a_file/{target}")
    assert code == 1 and "Traceback" not in said and "full_key" not in said
    errors = [line for line in said.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and errors[0].endswith(
        f"gansweep: {tmp_path}/a_file/{made}: Not a directory; a file stands where a directory "
        f"should: check the path")


@pytest.mark.slow
def test_an_output_directory_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "a_file").write_text("")
    for mode in ([], ["-m"]):
        done = subprocess.run([sys.executable, "-m", "gansweep", *mode,
                               f"paths.output_dir={tmp_path}/a_file/outputs"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith(
            f"gansweep: cannot make the output directory: {tmp_path}/a_file/outputs")


@pytest.mark.parametrize("command", [
    ["gansweep.evaluate", "RUN", "--n-images", "0"],
    ["gansweep.evaluate", "RUN", "--steps", "-2"],
    ["gansweep.benchmark", "train", "--norms", "bogus"],
    ["gansweep.benchmark", "recon", "--repeat", "0"],
    ["gansweep.report", "NOWHERE"],
    ["gansweep.benchmark", "data", "--datasets", "bogus"],
    ["gansweep.benchmark", "data", "--images", "20"],
    ["gansweep.benchmark", "recon", "--image-size", "7"],
    ["gansweep.benchmark", "train", "--compile", "fast"],
    ["gansweep.benchmark", "train", "--overrides", "train.lr=nan"],
])
def test_other_entry_points_end_bad_values_in_one_line(tmp_path, monkeypatch, capsys, command):
    command = [str(tmp_path) if c == "RUN" else str(tmp_path / "nowhere") if c == "NOWHERE"
               else c for c in command]
    # in this process, as `python -m` runs the module: an uncaught error would raise here
    code, said = run_module(monkeypatch, capsys, *command)
    assert code != 0 and "Traceback" not in said
    last = said.strip().splitlines()[-1]  # argparse's usage may come before it
    assert ": error: argument" in last or last.startswith("gansweep: "), said


@pytest.fixture
def small_disk(tmp_path):
    """A real file system of a few KiB (tmpfs, mounted as root, as CI runs), so that a
    write fails as on a full disk: the error is the kernel's, not a stand-in."""
    mounted = []

    def mount(size: str) -> Path:
        where = tmp_path / f"disk{len(mounted)}"
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(where)], capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here (root only): {done.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:  # lazily: a log file the command left open keeps it busy
        subprocess.run(["umount", "--lazy", str(where)], check=True)


def test_a_full_disk_names_the_file_whose_write_failed(small_disk):
    """A buffered write's ENOSPC carries no file name: each writer names its file."""
    from gansweep.data.split import Split, save_split
    from gansweep.rundir.durable import IterationCsv, write_json

    disk = small_disk("64k")
    (disk / "filler").write_bytes(b"x" * 60 * 1024)
    big = {"x": "y" * 20_000}
    with pytest.raises(OSError) as error:
        write_json(disk / "summary.json", big)
    assert error.value.errno == errno.ENOSPC
    assert error.value.filename == str(disk / "summary.json.tmp")
    with pytest.raises(OSError) as error:
        save_split(Split("d", "f", seed=0, holdout=1, permutation=list(range(5000))),
                   disk / "split.json")
    assert error.value.filename.startswith(str(disk / ".split.json."))
    (disk / "filler").unlink()
    csv = IterationCsv(disk / "train.csv", ["loss"])
    csv.open(resumed_at=0)
    (disk / "filler").write_bytes(b"x" * (60 * 1024 - 4096))
    with pytest.raises(OSError) as error:
        for i in range(2_000):
            csv.write(i, {"loss": 0.5})
    assert error.value.filename == str(disk / "train.csv")
    (disk / "filler").unlink()  # room for what is still buffered
    csv.close()


def test_a_disk_too_full_for_hydras_own_record_is_one_line(small_disk, monkeypatch, capsys):
    """Hydra writes .hydra/ before gansweep's code runs; on a full disk it ended in
    Hydra's traceback."""
    disk = small_disk("16k")
    code, said = run_module(monkeypatch, capsys, "gansweep", *QUICK,
                            f"paths.output_dir={disk}")
    assert code == 1 and "Traceback" not in said
    assert said.strip().splitlines()[-1].startswith(
        f"gansweep: {disk}/runs/") and "KiB free on its disk" in said
