"""`train(cfg)` on the real composed config, tiny and on CPU: outputs, counting, resume."""

import csv

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from gansweep.train import LOSS_COLUMNS, train


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("norm", ["vanilla", "bn", "wn"])
def test_every_norm_trains_and_writes_its_outputs(make_cfg, norm):
    cfg = make_cfg(f"norm={norm}")
    run = train(cfg)
    assert (run / "config.yaml").read_text().count(f"norm: {norm}") == 1
    rows = read_csv(run / "train.csv")
    assert [int(r["iter"]) for r in rows] == list(range(1, 7))  # one row per GAN iteration
    assert set(rows[0]) == {"iter", *LOSS_COLUMNS}
    assert all(float(r["d_loss"]) > 0 for r in rows)
    grids = sorted(p.name for p in (run / "samples").iterdir())
    assert grids == ["iter_000003.png", "iter_000006.png"]
    assert Image.open(run / "samples" / "iter_000006.png").size == (8 * 34 + 2, 8 * 34 + 2)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["gansweep"]["iteration"] == 6
    assert ckpt["global_step"] == 12  # Lightning counts 2 optimizer steps per iteration
    assert (run / "split.json").read_text() == (run.parent / "splits" / "digits-seed0.json").read_text()


def test_iterations_are_gan_iterations_not_optimizer_steps(make_cfg):
    cfg = make_cfg("train.iters=5", "train.ckpt_every=100")
    model = instantiate(cfg.model)
    steps = {"d": 0, "g": 0}
    data = instantiate(cfg.data)
    trainer = instantiate(cfg.trainer, callbacks=[])
    orig = model.configure_optimizers

    def counting_optimizers():
        opt_d, opt_g = orig()
        for key, opt in (("d", opt_d), ("g", opt_g)):
            opt.register_step_post_hook(lambda *_, key=key: steps.__setitem__(key, steps[key] + 1))
        return opt_d, opt_g

    model.configure_optimizers = counting_optimizers
    trainer.fit(model, datamodule=data)
    assert model.iteration == 5
    assert steps == {"d": 5, "g": 5}  # one D step and one G step per iteration


class CrashAt(L.Callback):
    """Simulates a crash: raises once the run reaches `iteration`."""

    def __init__(self, iteration):
        self.iteration = iteration

    def on_train_batch_end(self, trainer, pl_module, *args):
        if pl_module.iteration == self.iteration:
            raise RuntimeError("simulated crash")


def crash_then_rerun(cfg, crash_at):
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, callbacks=[CrashAt(crash_at)])
    return train(cfg)


def test_a_rerun_after_a_crash_resumes_and_continues_the_csv(make_cfg):
    cfg = make_cfg()  # 6 iterations, checkpoint every 3
    run = crash_then_rerun(cfg, crash_at=5)  # crash after row 5, checkpoint at 3
    rows = read_csv(run / "train.csv")
    assert [int(r["iter"]) for r in rows] == list(range(1, 7))  # no gap, no duplicate
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["gansweep"]["iteration"] == 6


def test_resumed_run_matches_uninterrupted_run(make_cfg, tmp_path):
    """Resumed at iteration 3, the losses of iterations 4-6 are exactly those of a run never
    interrupted (CPU): data order, codes and optimiser state all come back."""
    straight = train(make_cfg(f"run_dir={tmp_path}/straight"))
    resumed = crash_then_rerun(make_cfg(f"run_dir={tmp_path}/resumed"), crash_at=5)
    assert read_csv(resumed / "train.csv") == read_csv(straight / "train.csv")


def test_rerunning_a_finished_run_changes_nothing(make_cfg):
    run = train(make_cfg())
    before = (run / "train.csv").read_text()
    train(make_cfg())
    assert (run / "train.csv").read_text() == before


def test_same_seed_same_losses_other_seed_other_losses(make_cfg, tmp_path):
    a = train(make_cfg("seed=1", f"run_dir={tmp_path}/a"))
    b = train(make_cfg("seed=1", f"run_dir={tmp_path}/b"))
    c = train(make_cfg("seed=2", f"run_dir={tmp_path}/c"))
    assert read_csv(a / "train.csv") == read_csv(b / "train.csv")
    assert read_csv(a / "train.csv") != read_csv(c / "train.csv")
