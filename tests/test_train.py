"""`train(cfg)` on the real composed config, tiny and on CPU: outputs, counting, resume."""

import csv
import json
from pathlib import Path

import pytest
import torch
from conftest import ARCHS, NORMS, CrashAt, PoisonGenerator, train_run
from hydra.utils import instantiate
from PIL import Image

from gansweep.job import train
from gansweep.training.gan import LOSS_COLUMNS


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("norm", ["vanilla", "bn", "wn"])
def test_every_norm_trains_and_writes_its_outputs(make_cfg, norm):
    cfg = make_cfg(f"norm={norm}")
    run = train_run(cfg)
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
    recon = read_csv(run / "recon.csv")
    assert [int(r["iter"]) for r in recon] == [3, 6]  # recon.every=3
    assert all(0 < float(r["recon_mse"]) < 1 for r in recon)
    summary = json.loads((run / "summary.json").read_text())
    losses = {int(r["iter"]): float(r["recon_mse"]) for r in recon}
    best_iter = min(losses, key=losses.get)
    assert summary["best_iter"] == best_iter
    assert summary["running_loss"] == pytest.approx(losses[best_iter], rel=1e-6)
    best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=False)
    assert best["gansweep"]["iteration"] == best_iter == summary["final_iter"]
    assert summary | {"final_loss": 0} == {
        "status": "finished", "diverged_at": None,
        "norm": norm, "arch": "dcgan", "dataset": "digits", "loss": "nonsaturating",
        "penalty": "none", "seed": 0, "iters_done": 6, "best_iter": best_iter, "running_loss": summary["running_loss"],
        "running_n_images": 8, "running_steps": 5, "final_loss": 0, "final_iter": best_iter,
        "final_n_images": 16, "final_steps": 10, "restarts": [],
    }
    assert 0 < summary["final_loss"] < 1


@pytest.mark.parametrize("deterministic", [False, True])
def test_trainer_deterministic_reaches_torch(make_cfg, deterministic):
    # On a GPU this is what makes reruns and resumes bitwise equal (checked on an H100: the
    # resume, kill and seed tests fail at float rounding with false and pass with true).
    before = torch.are_deterministic_algorithms_enabled()
    try:
        train(make_cfg(f"trainer.deterministic={deterministic}", "train.iters=1"))
        assert torch.are_deterministic_algorithms_enabled() is deterministic
    finally:
        torch.use_deterministic_algorithms(before)


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


def crash_then_rerun(cfg, crash_at):
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, callbacks=[CrashAt(crash_at)])
    return train_run(cfg)


def test_a_rerun_after_a_crash_resumes_and_continues_the_csv(make_cfg):
    cfg = make_cfg()  # 6 iterations, checkpoint every 3
    run = crash_then_rerun(cfg, crash_at=5)  # crash after row 5, checkpoint at 3
    rows = read_csv(run / "train.csv")
    assert [int(r["iter"]) for r in rows] == list(range(1, 7))  # no gap, no duplicate
    assert [int(r["iter"]) for r in read_csv(run / "recon.csv")] == [3, 6]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["gansweep"]["iteration"] == 6
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"


def test_resumed_run_matches_uninterrupted_run(make_cfg, tmp_path):
    """Resumed at iteration 3, the losses of iterations 4-6 are exactly those of a run never
    interrupted (CPU): data order, codes and optimiser state all come back."""
    straight = train_run(make_cfg(f"run_dir={tmp_path}/straight"))
    resumed = crash_then_rerun(make_cfg(f"run_dir={tmp_path}/resumed"), crash_at=5)
    for name in ("train.csv", "recon.csv"):
        assert read_csv(resumed / name) == read_csv(straight / name)
    assert json.loads((resumed / "summary.json").read_text()) == \
        json.loads((straight / "summary.json").read_text())


def test_a_resume_mid_run_does_not_warn_of_unreliable_results(make_cfg, recwarn):
    """Lightning warns that a resume from the middle of an epoch with a loader it cannot
    resume "can cause unreliable results"; gansweep's loader resumes exactly, and says so."""
    crash_then_rerun(make_cfg("train.ckpt_every=2"), crash_at=5)  # resumed at 4 of 6
    assert not [w for w in recwarn if "not resumable" in str(w.message)]


def test_rerunning_a_finished_run_changes_nothing(make_cfg, capsys):
    run = train_run(make_cfg())
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    train(make_cfg())
    assert "already finished" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_a_crash_after_training_before_the_summary_only_redoes_the_final_test(make_cfg):
    run = train_run(make_cfg())
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").unlink()
    recon_before = (run / "recon.csv").read_text()
    train(make_cfg())
    assert (run / "recon.csv").read_text() == recon_before  # no running test repeated
    assert json.loads((run / "summary.json").read_text()) == summary


def test_same_seed_same_losses_other_seed_other_losses(make_cfg, tmp_path):
    a = train_run(make_cfg("seed=1", f"run_dir={tmp_path}/a"))
    b = train_run(make_cfg("seed=1", f"run_dir={tmp_path}/b"))
    c = train_run(make_cfg("seed=2", f"run_dir={tmp_path}/c"))
    assert read_csv(a / "train.csv") == read_csv(b / "train.csv")
    assert read_csv(a / "train.csv") != read_csv(c / "train.csv")


def test_running_recon_reaches_the_logger_against_the_gan_iteration(make_cfg, tmp_path):
    cfg = make_cfg()
    cfg.trainer.logger = {"_target_": "lightning.pytorch.loggers.CSVLogger",
                          "save_dir": str(tmp_path / "logs"), "name": "", "version": ""}
    run = train_run(cfg)
    logged = [r for r in read_csv(tmp_path / "logs" / "metrics.csv") if r.get("recon/running")]
    expected = read_csv(run / "recon.csv")
    assert [int(float(r["trainer/iter"])) for r in logged] == [int(r["iter"]) for r in expected]
    assert [float(r["recon/running"]) for r in logged] == \
        pytest.approx([float(r["recon_mse"]) for r in expected], rel=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("norm", NORMS)
def test_every_arch_norm_pair_trains(make_cfg, arch, norm):
    run = train_run(make_cfg(f"arch={arch}", f"norm={norm}", "train.iters=2"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["arch"] == arch and summary["norm"] == norm and summary["iters_done"] == 2
    rows = read_csv(run / "train.csv")
    assert all(float(r["d_loss"]) > 0 and float(r["g_loss"]) > 0 for r in rows)
    assert 0 < summary["final_loss"] < 1


def test_divergence_is_a_result_not_a_crash(make_cfg, capsys):
    cfg = make_cfg("train.iters=12")
    run = train_run(cfg, callbacks=[PoisonGenerator(4)])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["diverged_at"] == 5
    assert summary["iters_done"] == 5  # stopped there, cleanly
    assert "diverged at iteration 5" in capsys.readouterr().out
    rows = read_csv(run / "train.csv")
    assert [int(r["iter"]) for r in rows] == [1, 2, 3, 4, 5] and rows[-1]["d_loss"] == "nan"
    assert [int(r["iter"]) for r in read_csv(run / "recon.csv")] == [3]  # history kept
    best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=False)
    assert best["gansweep"]["iteration"] == 3 == summary["best_iter"]
    assert 0 < summary["final_loss"] < 1  # the best checkpoint still gets its final test
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["gansweep"]["iteration"] == 3  # the last checkpoint before the fault
    # a diverged run is a result: running the same command again keeps it as it is
    train(cfg)
    assert "already diverged at iteration 5, skipped" in capsys.readouterr().out


def test_a_diverged_run_shows_in_the_report(make_cfg, tmp_path):
    from gansweep.report.table import main

    train(make_cfg("train.iters=12", f"run_dir={tmp_path}/sweep/wn"),
          callbacks=[PoisonGenerator(4)])
    train(make_cfg("norm=bn", f"run_dir={tmp_path}/sweep/bn"))
    md = main([str(tmp_path / "sweep")])
    assert "| wn | 3 |" in md and "diverged at 5 (seed 0)" in md


def test_a_run_that_trains_drops_the_failure_an_earlier_attempt_left(make_cfg):
    from gansweep.rundir.records import write_failure

    cfg = make_cfg()
    write_failure(Path(cfg.run_dir), cfg, ValueError("out of memory"))
    run = train_run(cfg)
    assert not (run / "failed.json").exists()
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"


def test_a_gan_knows_whether_a_trainer_fits_it(make_cfg):
    """`GAN.attached_trainer` relies on Lightning's `trainer` raising RuntimeError for a
    module no Trainer holds (Lightning has no public is-attached test); this pins it."""
    cfg = make_cfg()
    model = instantiate(cfg.model)
    with pytest.raises(RuntimeError):
        model.trainer
    assert model.attached_trainer() is None
    trainer = instantiate(cfg.trainer, callbacks=[])
    model.trainer = trainer
    assert model.attached_trainer() is trainer
