"""Nothing is read back from the device inside an iteration; the losses come back in batches
(`train.log_every`, and before anything is saved), and a divergence found late still stops
the run at the iteration it happened, with nothing saved from that iteration on."""

import csv
import json

import lightning as L
import pytest
import torch
from conftest import PoisonGenerator, train_run
from torch.utils._python_dispatch import TorchDispatchMode

from gansweep.job import train
from gansweep.training.gan import GAN

# ops that copy a tensor's value to the host: item(), bool(), float(), an `if` on a tensor
HOST_READS = {"aten::_local_scalar_dense", "aten::nonzero", "aten::masked_select",
              "aten::is_nonzero"}


class HostReads(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func._schema.name in HOST_READS:
            self.seen.append(func._schema.name)
        return func(*args, **(kwargs or {}))


class WatchIterations(L.Callback):
    """Watches everything the run does from the start of iteration `first` to the start of
    iteration `last`: the steps, Lightning's loop and every callback."""

    def __init__(self, first: int, last: int):
        self.first, self.last, self.mode = first, last, HostReads()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx + 1 == self.first:
            self.mode.__enter__()
        if batch_idx + 1 == self.last:
            self.mode.__exit__(None, None, None)


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_iterations_between_reads_copy_nothing_to_the_host(make_cfg):
    # W&B offline and the progress bar on: the whole path of `python -m gansweep`
    watch = WatchIterations(first=2, last=7)
    cfg = make_cfg("train.iters=8", "train.log_every=8", "recon.every=8", "train.ckpt_every=8",
                   "train.sample_every=8", "wandb.mode=offline",
                   "trainer.enable_progress_bar=true")
    run = train_run(cfg, callbacks=[watch])
    assert watch.mode.seen == []
    # the mechanism is live: the same watch catches a plain `if` on a loss
    with HostReads() as mode:
        if torch.isfinite(torch.tensor(1.0)):
            pass
    assert mode.seen
    assert [int(r["iter"]) for r in read_rows(run / "train.csv")] == list(range(1, 9))


def test_losses_come_back_every_log_every_iterations_and_before_each_save(make_cfg,
                                                                         monkeypatch):
    reads = []
    original = GAN.read_losses

    def counted(self):
        if self._unread:
            reads.append(self.iteration)
        return original(self)

    monkeypatch.setattr(GAN, "read_losses", counted)
    run = train_run(make_cfg("train.iters=12", "train.log_every=4", "recon.every=6",
                         "train.ckpt_every=6", "train.sample_every=6"))
    assert reads == [4, 6, 8, 12]  # log_every, and the running test / checkpoint at 6 and 12
    rows = read_rows(run / "train.csv")
    assert [int(r["iter"]) for r in rows] == list(range(1, 13))
    assert all(float(r["d_loss"]) > 0 and 0 < float(r["d_real"]) < 1 for r in rows)


@pytest.mark.parametrize("log_every", [1, 100])
def test_a_divergence_read_late_stops_the_run_where_it_happened(make_cfg, log_every):
    # G becomes NaN after iteration 4, so iteration 5's losses are NaN; with log_every=100
    # that is only read at iteration 6 (the running test and checkpoint are due there)
    run = train_run(make_cfg("train.iters=12", f"train.log_every={log_every}"),
                callbacks=[PoisonGenerator(4)])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["diverged_at"] == 5 and summary["iters_done"] == 5
    assert [int(r["iter"]) for r in read_rows(run / "train.csv")] == [1, 2, 3, 4, 5]
    assert [int(r["iter"]) for r in read_rows(run / "recon.csv")] == [3]  # none at 6
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["gansweep"]["iteration"] == 3
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["iter_000003.png"]


def test_nothing_is_saved_from_a_faulty_iteration_that_is_due_for_saving(make_cfg):
    # NaN losses at iteration 6, where the running test, samples and checkpoint are due
    run = train_run(make_cfg("train.iters=12"), callbacks=[PoisonGenerator(5)])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["diverged_at"] == 6 and summary["status"] == "diverged"
    assert read_rows(run / "train.csv")[-1]["iter"] == "6"
    assert [int(r["iter"]) for r in read_rows(run / "recon.csv")] == [3]
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["gansweep"]["iteration"] == 3 and last["gansweep"]["diverged_at"] is None
    assert not (run / "samples" / "iter_000006.png").exists()
    assert 0 < summary["final_loss"] < 1  # best.ckpt (iteration 3) still gets its final test


def test_the_progress_bar_shows_the_losses_read_back(make_cfg, capfd):
    train(make_cfg("train.iters=6", "train.log_every=2", "trainer.enable_progress_bar=true"))
    shown = capfd.readouterr().out  # Lightning's bars write to stdout
    assert "GAN iteration" in shown and "6/6" in shown
    assert "train/d_loss=" in shown and "train/g_loss=" in shown
