"""W&B in offline mode: what wandb really wrote on disk, read back and checked."""

import csv
import json
from pathlib import Path

import pytest
from conftest import TINY, CrashAt, run_gansweep, train_run
from wandb_files import OfflineRun, check_each_iteration_once, offline_runs

from gansweep.job import train
from gansweep.rundir.names import wandb_group
from gansweep.training.gan import LOSS_COLUMNS


def recon_rows(run):
    with open(run / "recon.csv", newline="") as f:
        return [(int(r["iter"]), float(r["recon_mse"])) for r in csv.DictReader(f)]


def train_rows(run):
    with open(run / "train.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_run_logs_its_recon_series_config_and_summary(make_cfg):
    run = train_run(make_cfg("wandb.mode=offline", "norm=bn", "seed=4"))
    (wb,) = offline_runs(run / "wandb")
    assert wb.run.run_id == (run / "wandb_id.txt").read_text()
    # the recon series, against the GAN iteration, equals recon.csv
    assert [(i, pytest.approx(v, rel=1e-6)) for i, v in wb.series("recon/running")] == \
        recon_rows(run)
    assert [i for i, _ in wb.series("train/d_loss")] == list(range(1, 7))
    # every metric is plotted against trainer/iter; recon/running keeps its minimum
    definitions = {m.glob_name or m.name: m for m in wb.metrics}
    assert definitions["*"].step_metric == "trainer/iter"
    assert definitions["recon/running"].step_metric == "trainer/iter"
    assert definitions["recon/running"].summary.min
    # flattened config with the comparison keys on top
    assert wb.config["norm"] == "bn" and wb.config["arch"] == "dcgan"
    assert wb.config["dataset"] == "digits" and wb.config["seed"] == 4
    assert wb.config["train.lr"] == pytest.approx(5e-4) and "recon.steps" in wb.config
    assert wb.run.run_group == wandb_group(run.name) and wb.run.job_type == "bn"
    assert set(wb.run.tags) == {"dcgan", "digits", "bn"}
    summary = json.loads((run / "summary.json").read_text())
    for key in ("best_iter", "running_loss", "final_loss", "status"):
        assert wb.summary[key] == summary[key]
    # sample grids in their iterations' rows; targets vs reconstructions in the summary
    files = next((run / "wandb").glob("offline-run-*")) / "files"
    grids = [row for row in wb.history if row.get("samples/_type") == "image-file"]
    assert [row["trainer/iter"] for row in grids] == [3, 6]
    assert (files / grids[-1]["samples/path"]).exists()
    assert wb.summary["final_recon"]["_type"] == "image-file"
    assert (files / wb.summary["final_recon"]["path"]).exists()
    assert (run / "final_recon.png").exists()
    # one row per iteration, W&B's step the iteration, every loss of train.csv in it
    rows = check_each_iteration_once([wb], 6)
    assert [[pytest.approx(float(r[c]), rel=1e-6) for c in LOSS_COLUMNS]
            for r in train_rows(run)] == [[row[f"train/{c}"] for c in LOSS_COLUMNS]
                                          for row in rows]


def test_a_resumed_run_continues_the_same_wandb_run(make_cfg):
    """The crash comes at iteration 5, after the checkpoint at 3: the first piece holds rows
    1-5, and the resumed one, which trains 4-6 again, logs only 6."""
    cfg = make_cfg("wandb.mode=offline")
    with pytest.raises(RuntimeError):
        train(cfg, callbacks=[CrashAt(5)])
    run = train_run(cfg)
    first, second = offline_runs(run / "wandb")
    assert first.run.run_id == second.run.run_id == (run / "wandb_id.txt").read_text()
    assert [row["trainer/iter"] for row in second.history] == [6]
    check_each_iteration_once([first, second], 6)
    series = first.series("recon/running") + second.series("recon/running")
    assert [(i, pytest.approx(v, rel=1e-6)) for i, v in series] == recon_rows(run)


def cut_short(log: Path, cut: str) -> None:
    """What a kill leaves of a piece's W&B file: its header only (the service wrote nothing
    yet), or its records up to one torn in the middle (the third naming a loss)."""
    records = log.read_bytes()
    if cut == "header":
        log.write_bytes(records[:7])
    else:
        third_row = [i for i in range(len(records)) if records.startswith(b"train/d_loss", i)][2]
        log.write_bytes(records[:third_row])


@pytest.mark.parametrize("cut", ["header", "torn"])
def test_a_resumed_run_replays_what_a_kill_took_from_wandb(make_cfg, cut):
    """A kill can leave W&B's file of a piece short (its service writes whole blocks and dies
    with the run). The resumed piece replays the iterations the earlier one lacks, up to its
    checkpoint (3), from the run's files, then goes on: each iteration once, in order."""
    cfg = make_cfg("wandb.mode=offline")
    with pytest.raises(RuntimeError):
        train(cfg, callbacks=[CrashAt(5)])
    (log,) = Path(cfg.run_dir).glob("wandb/offline-run-*/run-*.wandb")
    cut_short(log, cut)
    run = train_run(cfg)
    first, second = offline_runs(run / "wandb", finished=False)
    kept = [row["trainer/iter"] for row in first.history]  # read up to the torn record
    assert kept == [] if cut == "header" else kept == list(range(1, len(kept) + 1)) != []
    rows = check_each_iteration_once([first, second], 6)
    assert [[pytest.approx(float(r[c]), rel=1e-6) for c in LOSS_COLUMNS]
            for r in train_rows(run)] == [[row[f"train/{c}"] for c in LOSS_COLUMNS]
                                          for row in rows]
    recon = [(row["trainer/iter"], row["recon/running"]) for row in rows
             if "recon/running" in row]
    assert [(i, pytest.approx(v, rel=1e-6)) for i, v in recon] == recon_rows(run)
    assert [row["trainer/iter"] for row in rows if "samples/_type" in row] == [3, 6]


def test_disabled_writes_no_wandb_files(make_cfg):
    run = train_run(make_cfg("wandb.mode=disabled"))
    assert not (run / "wandb").exists() and not (run / "wandb_id.txt").exists()


@pytest.mark.slow
def test_a_multirun_makes_one_wandb_run_per_job_grouped_by_sweep(tmp_path, monkeypatch,
                                                                 capsys):
    short = [o for o in TINY if o != "wandb.mode=disabled"]
    run_gansweep(monkeypatch, capsys, tmp_path, "-m", "norm=vanilla,wn", *short,
                 "wandb.mode=offline")
    (sweep,) = (tmp_path / "outputs" / "sweeps").iterdir()
    runs = {p.parent.parent.parent.name: OfflineRun(p)
            for p in sweep.rglob("offline-run-*/run-*.wandb")}
    assert len(runs) == 2  # one W&B run per job, never merged
    assert {wb.run.run_group for wb in runs.values()} == {wandb_group(sweep.name)}
    assert {wb.config["norm"] for wb in runs.values()} == {"vanilla", "wn"}
    assert len({wb.run.run_id for wb in runs.values()}) == 2
    # the overrides that change results, for the report built from W&B (not wandb.mode)
    for wb in runs.values():
        assert wb.config["settings"]["norm"] == wb.config["norm"]
        assert wb.config["settings"]["train.iters"] == "6"
        assert "wandb.mode" not in wb.config["settings"]


def test_dryrun_is_offline(make_cfg):
    """W&B's own name for offline mode, which its offline runs export as WANDB_MODE."""
    run = train_run(make_cfg("wandb.mode=dryrun"))
    (offline,) = offline_runs(run / "wandb")
    assert offline.run.run_id == (run / "wandb_id.txt").read_text()


def test_the_last_step_of_a_long_piece_is_read_from_its_end(tmp_path):
    """`wandb_pieces.last_step` reads a few blocks from the end: on a log of many blocks
    (records across block boundaries), whole or cut anywhere, it finds what reading the whole
    file finds."""
    import wandb

    from gansweep.training.wandb_pieces import BLOCK, last_step, records

    run = wandb.init(project="p", mode="offline", dir=tmp_path, reinit="create_new")
    for step in range(1, 3001):
        run.log({"trainer/iter": step, "note": "x" * (step % 97)}, step=step, commit=True)
    run.finish()
    (log,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    OfflineRun(log)  # waits for W&B's last record
    whole = log.read_bytes()
    assert len(whole) > 8 * BLOCK
    assert last_step(log) == 3000
    for cut in (len(whole) - BLOCK - 5, 3 * BLOCK + 1000, BLOCK + 3):
        log.write_bytes(whole[:cut])
        steps = [r.history.step.num for r in records(log)
                 if r.WhichOneof("record_type") == "history"]
        assert steps == list(range(1, len(steps) + 1))
        assert last_step(log) == (steps[-1] if steps else None)
