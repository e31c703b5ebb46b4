"""Damaged files: a torn or foreign checkpoint, summary, CSV or split ends in one line naming
the file and what moving it away does (and an intact older copy, where there is one); the
report lists an unreadable run and makes the table of the others."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import CrashAt, compose_config, train_run

from gansweep.cli import run_command
from gansweep.errors import DamagedFile
from gansweep.evaluate import main as evaluate
from gansweep.job import train
from gansweep.report.table import report


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny run, copied by each test that damages it."""
    root = tmp_path_factory.mktemp("finished")
    return train_run(compose_config(root))


@pytest.fixture
def unfinished(make_cfg):
    """(config, run directory) of a run cut short at iteration 4 (last.ckpt at 3)."""
    cfg = make_cfg()
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, callbacks=[CrashAt(4)])
    return cfg, Path(cfg.run_dir)


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("damage", ["truncated", "garbage", "foreign"])
def test_a_damaged_last_checkpoint_names_itself_and_the_intact_best(unfinished, damage):
    cfg, run = unfinished
    last = run / "checkpoints" / "last.ckpt"
    if damage == "truncated":
        truncate(last)
    elif damage == "garbage":
        last.write_bytes(b"not a checkpoint at all")
    else:
        torch.save({"state_dict": {}}, last)  # some other program's file
    with pytest.raises(DamagedFile) as error:
        train(cfg)
    message = str(error.value)
    assert message.startswith(f"{last} cannot be read (")
    assert "\n" not in message and "move it away (the run then trains from its first" in message
    assert f"{run / 'checkpoints' / 'best.ckpt'} is intact (iteration 3)" in message
    assert not (run / "summary.json").exists()


def test_a_torn_write_names_the_intact_temporary_copy(unfinished):
    cfg, run = unfinished
    last = run / "checkpoints" / "last.ckpt"
    shutil.copyfile(last, last.with_name("last.ckpt.tmp"))  # the write, before its rename
    truncate(last)
    with pytest.raises(DamagedFile, match=r"last\.ckpt\.tmp is intact \(iteration 3\)"):
        train(cfg)


def test_a_damaged_best_checkpoint_stops_the_resume_before_any_training(unfinished):
    cfg, run = unfinished
    truncate(run / "checkpoints" / "best.ckpt")
    rows = (run / "train.csv").read_text()
    with pytest.raises(DamagedFile, match=r"best\.ckpt cannot be read .*no final test"):
        train(cfg)
    assert (run / "train.csv").read_text() == rows


@pytest.mark.parametrize("name, content, says", [
    ("summary.json", '{"status": "fini', "not JSON"),
    ("summary.json", "[1, 2]", "not a JSON object"),
])
def test_a_damaged_record_names_itself(finished, tmp_path, name, content, says):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / name).write_text(content)
    cfg = compose_config(tmp_path)
    with pytest.raises(DamagedFile, match=f"{name} cannot be read \\({says}"):
        train(cfg)


@pytest.mark.parametrize("name", ["train.csv", "recon.csv"])
def test_a_foreign_csv_names_itself_instead_of_being_cut_to_nothing(unfinished, name):
    cfg, run = unfinished
    (run / name).write_text("epoch,loss\n1,0.5\n")
    with pytest.raises(DamagedFile, match=f"{name} cannot be read \\(its columns are epoch"):
        train(cfg)
    assert (run / name).read_text() == "epoch,loss\n1,0.5\n"  # left as it was


def test_a_damaged_split_names_itself(make_cfg, tmp_path):
    cfg = make_cfg()
    train(make_cfg(f"run_dir={tmp_path}/first"))
    (split,) = (tmp_path / "splits").glob("*.json")
    split.write_text('{"dataset": "digits", "perm')
    with pytest.raises(DamagedFile, match="made anew from its seed"):
        train(cfg)


def test_the_evaluator_names_a_damaged_checkpoint_in_one_line(finished, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    truncate(run / "checkpoints" / "best.ckpt")
    with pytest.raises(SystemExit) as exit_:
        run_command(evaluate, [str(run)])
    assert exit_.value.code.startswith(f"gansweep: {run / 'checkpoints' / 'best.ckpt'} cannot "
                                       f"be read")


@pytest.mark.parametrize("damaged", ["summary.json", "failed.json", "config.yaml", "recon.csv",
                                     ".hydra/hydra.yaml"])
def test_one_unreadable_run_does_not_take_the_report_down(finished, tmp_path, damaged):
    sweep = tmp_path / "sweep"
    for name in ("good", "bad"):
        shutil.copytree(finished, sweep / name)
    if damaged == "failed.json":  # a failed run has no summary
        (sweep / "bad" / "summary.json").unlink()
    (sweep / "bad" / damaged).parent.mkdir(exist_ok=True)
    (sweep / "bad" / damaged).write_text("{torn: [\x00")
    table = report(sweep)
    rows = [line for line in table.splitlines() if line.startswith("| wn")]
    assert len(rows) == 1 and "| 1 | 1 finished |" in rows[0]  # the good run alone
    assert f"unreadable, not in the table: {sweep / 'bad'}: " in table
    assert json.loads((sweep / "good" / "summary.json").read_text())["status"] == "finished"


def test_what_the_message_says_moving_a_summary_away_does(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / "summary.json").rename(tmp_path / "summary.json.damaged")
    train(compose_config(tmp_path))  # "the final test then runs again"
    assert json.loads((run / "summary.json").read_text()) == \
        json.loads((finished / "summary.json").read_text())
