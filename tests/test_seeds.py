"""Packed seeds (`train.seeds`, gansweep/training/packed.py): each seed is the run it would be
alone."""

import csv
import json
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import (
    ARCHS,
    NORMS,
    TINY,
    CrashAt,
    compose_config,
    numbers,
    run_gansweep,
    train_packed,
    train_run,
)

from gansweep.job import train
from gansweep.rundir.names import sweep_name, unchanging_keys

pytestmark = pytest.mark.slow


def rows(run_dir: Path, name: str = "train.csv") -> list[dict]:
    with open(run_dir / name) as f:
        return list(csv.DictReader(f))


def alone(tmp_path, seed, *overrides, name=None):
    cfg = compose_config(tmp_path, f"seed={seed}", f"run_dir='{tmp_path}/{name or f'alone{seed}'}'",
                         *overrides)
    return train_run(cfg)


def deviation(a: Path, b: Path) -> float:
    """The largest relative difference between two runs' train.csv losses."""
    x, y = numbers(a)[:, 1:], numbers(b)[:, 1:]
    return ((x - y).abs() / y.abs()).max().item()


TWENTY = ["train.iters=20", "recon.every=10", "train.ckpt_every=10", "train.sample_every=10"]
TEN = ["train.iters=10", "recon.every=5", "train.ckpt_every=5", "train.sample_every=5"]


@pytest.mark.parametrize("norm", [n for n in NORMS if n != "sn"])
@pytest.mark.parametrize("arch", ARCHS)
def test_each_packed_seed_trains_as_its_run_alone(tmp_path, arch, norm):
    # In float64, so that what is compared is the computation, not float32's rounding
    # (grouped vs single convolutions), which GAN training amplifies (the next test)
    # 10 iterations: an exact computation stays exact, and two running tests compare
    settings = [f"arch={arch}", f"norm={norm}", *TEN, "+trainer.precision=64-true"]
    dirs = train_packed(tmp_path, [0, 1], *settings)
    for seed, run_dir in dirs.items():
        one = alone(tmp_path, seed, *settings)
        assert len(rows(run_dir)) == len(rows(one)) == 10
        assert deviation(run_dir, one) < 1e-4, seed
        assert torch.allclose(numbers(run_dir, "recon.csv"), numbers(one, "recon.csv"),
                              rtol=1e-4)


def test_each_packed_seeds_sample_quality_is_its_run_alones(tmp_path):
    """FID/KID of each seed from its own G: in float64, packed = alone, at each test and in
    the summary (the classifier's cache is shared by the split, as runs share it)."""
    settings = [*TEN, "+trainer.precision=64-true", "quality.metrics=[fid,kid]",
                "quality.n_samples=200", "quality.kid_subset_size=100"]
    dirs = train_packed(tmp_path, [0, 1], *settings)
    for seed, run_dir in dirs.items():
        one = alone(tmp_path, seed, *settings)
        packed, single = numbers(run_dir, "quality.csv"), numbers(one, "quality.csv")
        assert packed[:, 0].tolist() == [5, 10]
        torch.testing.assert_close(packed, single, rtol=1e-4, atol=0)
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["final_fid"] == pytest.approx(
            json.loads((one / "summary.json").read_text())["final_fid"], rel=1e-4)
    assert not torch.equal(numbers(dirs[0], "quality.csv"), numbers(dirs[1], "quality.csv"))


@pytest.mark.parametrize("norm, loss, penalty", [("wn", "hinge", "wgan_gp"),
                                                 ("bn", "wasserstein", "dragan"),
                                                 ("ln", "least_squares", "dragan")])
def test_each_packed_seed_gets_its_own_penalty_as_alone(tmp_path, norm, loss, penalty):
    """A penalty's random points and its gradient norms are each copy's own: packed = alone
    in float64, for each penalty and loss, through WN, BN and LN."""
    settings = [f"norm={norm}", f"loss={loss}", f"penalty={penalty}", *TEN[:1], "recon.every=5",
                "+trainer.precision=64-true"]
    dirs = train_packed(tmp_path, [0, 1], *settings)
    for seed, run_dir in dirs.items():
        one = alone(tmp_path, seed, *settings)
        assert len(rows(run_dir)) == len(rows(one)) == 10
        # scores near 0 (a critic's) make a relative deviation meaningless: close in both
        torch.testing.assert_close(numbers(run_dir), numbers(one), rtol=1e-6, atol=1e-9)


def test_in_float32_packing_perturbs_a_run_no_more_than_float32_rounding_does(tmp_path):
    """WN at the digits learning rate turns float32 rounding into differences of 1e-3 within
    5 iterations and 1e-2 within 20, however the rounding arises. Packing (other kernels,
    other orders of summation) stays within what float32 rounding does to the same run: its
    distance from the run in float64."""
    settings = ["norm=wn", *TWENTY]
    packed_seed = train_packed(tmp_path, [0, 1], *settings)[0]
    one = alone(tmp_path, 0, *settings)
    exact = alone(tmp_path, 0, *settings, "+trainer.precision=64-true", name="float64")
    assert deviation(packed_seed, one) <= deviation(one, exact)
    # before the amplification sets in, the packed losses are the run's to float rounding
    assert torch.allclose(numbers(packed_seed)[:3], numbers(one)[:3], rtol=1e-5)


def test_a_packed_seed_writes_what_its_run_alone_writes(tmp_path):
    from gansweep.evaluate import load_generator

    dirs = train_packed(tmp_path, [0, 3], "wandb.mode=offline")
    one = alone(tmp_path, 3, "wandb.mode=offline")

    def files(run_dir):
        return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*")
                      if "wandb" not in p.parts)

    assert files(dirs[3]) == files(one)
    config = (dirs[3] / "config.yaml").read_text().replace(str(dirs[3]), "RUN")
    assert config == (one / "config.yaml").read_text().replace(str(one), "RUN")
    summary = json.loads((dirs[3] / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["seed"] == 3
    # its checkpoints are the unpacked format: the evaluator loads them, the weights are G's
    generator, iteration = load_generator(dirs[3] / "checkpoints" / "best.ckpt")
    assert iteration == 6 and generator.code_dim == 16
    # one W&B run per seed, in the seed's directory, saying its seed
    from wandb_files import offline_runs

    for seed, run_dir in dirs.items():
        (run,) = offline_runs(run_dir)
        assert run.config["seed"] == seed and run.summary["status"] == "finished"
        assert [i for i, _ in run.series("recon/running")] == [3, 6]


def test_a_run_alone_resumes_from_a_packed_seeds_checkpoint(tmp_path):
    # float64, as below: in float32 the packed iterations 1-3 round otherwise than a run
    # alone's, and by iteration 6 that reached 3e-4 on one CPU and less on another
    f64 = "+trainer.precision=64-true"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_packed(tmp_path, [0, 1], f64, callbacks=[CrashAt(4)])  # both last.ckpt at 3
    dirs = {s: tmp_path / "run" / f"seed={s}" for s in (0, 1)}
    last = torch.load(dirs[1] / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["gansweep"]["iteration"] == 3 and last["hyper_parameters"]["seed"] == 1
    resumed = alone(tmp_path, 1, f64, name="run/seed=1")  # the unpacked command, there
    uninterrupted = alone(tmp_path, 1, f64)
    assert [int(r["iter"]) for r in rows(resumed)] == list(range(1, 7))
    assert torch.allclose(numbers(resumed), numbers(uninterrupted), rtol=1e-6, atol=1e-7)


def test_a_packed_job_resumes_a_seed_its_run_alone_left_unfinished(tmp_path):
    # float64: packed against alone, so float32's rounding (first test) stays out of it
    f64 = "+trainer.precision=64-true"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(compose_config(tmp_path, "seed=1", f"run_dir='{tmp_path}/run/seed=1'", f64),
              callbacks=[CrashAt(4)])  # seed 1 alone, last.ckpt at 3
    dirs = train_packed(tmp_path, [0, 1], f64)  # seed 1 resumes at 3, seed 0 starts afresh
    for seed in (0, 1):
        assert [int(r["iter"]) for r in rows(dirs[seed])] == list(range(1, 7))
        assert torch.allclose(numbers(dirs[seed]), numbers(alone(tmp_path, seed, f64)),
                              rtol=1e-6, atol=1e-7), seed


def test_a_crashed_packed_job_resumes_to_its_uninterrupted_files(tmp_path):
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_packed(tmp_path / "a", [0, 1], callbacks=[CrashAt(5)])
    resumed = train_packed(tmp_path / "a", [0, 1])
    uninterrupted = train_packed(tmp_path / "b", [0, 1])
    for seed in (0, 1):
        for name in ("train.csv", "recon.csv"):
            assert (resumed[seed] / name).read_text() == \
                (uninterrupted[seed] / name).read_text(), (seed, name)
        done = json.loads((resumed[seed] / "summary.json").read_text())
        assert done == json.loads((uninterrupted[seed] / "summary.json").read_text())
    assert not (tmp_path / "a" / "run" / "packed.ckpt").exists()


class PoisonCopy(L.Callback):
    """Sets packed copy `k`'s G to NaN after `iteration`: that seed's next losses are NaN."""

    def __init__(self, iteration: int, k: int):
        self.iteration, self.k = iteration, k

    def on_train_batch_end(self, trainer, pl_module, *args):
        if pl_module.iteration == self.iteration:
            with torch.no_grad():
                for p in pl_module.generator.parameters():
                    p[self.k].fill_(float("nan"))


def test_a_diverging_seed_stops_alone_and_the_others_go_on(tmp_path):
    poisoned = train_packed(tmp_path / "a", [0, 1], callbacks=[PoisonCopy(3, k=1)])
    clean = train_packed(tmp_path / "b", [0, 1])
    diverged = json.loads((poisoned[1] / "summary.json").read_text())
    assert diverged["status"] == "diverged" and diverged["diverged_at"] == 4
    assert [int(r["iter"]) for r in rows(poisoned[1])] == [1, 2, 3, 4]
    # its checkpoints hold the weights of before the fault
    last = torch.load(poisoned[1] / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["gansweep"]["iteration"] == 3
    weights = [v for v in last["state_dict"].values() if v.is_floating_point()]
    assert all(torch.isfinite(v).all() for v in weights)
    # the other seed never notices
    for name in ("train.csv", "recon.csv", "summary.json"):
        assert (poisoned[0] / name).read_text() == (clean[0] / name).read_text(), name


def test_finished_seeds_are_not_trained_again(tmp_path):
    dirs = train_packed(tmp_path, [0, 1])
    before = {s: (d / "summary.json").stat().st_mtime_ns for s, d in dirs.items()}
    more = train_packed(tmp_path, [0, 1, 2])
    assert {s: (more[s] / "summary.json").stat().st_mtime_ns for s in (0, 1)} == before
    assert json.loads((more[2] / "summary.json").read_text())["status"] == "finished"


@pytest.mark.parametrize("override, message", [
    ("train.seeds=[0,0]", "train.seeds=[0, 0]: must be a list of distinct whole numbers"),
    ("train.seeds=[]", "must be a list of distinct whole numbers"),
    ("norm=sn", "packed seeds do not work with norm=sn"),
    ("seed=5", "seed=5 with train.seeds=[0, 1]: the seeds trained are train.seeds'"),
])
def test_what_packing_cannot_do_is_refused_in_one_line(tmp_path, override, message):
    from gansweep.validate import ConfigError

    seeds = [] if "train.seeds" in override else ["train.seeds=[0,1]"]
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        train(compose_config(tmp_path, *seeds, override))


def test_compiled_packed_seeds_train_as_the_eager_packed_ones(tmp_path, capsys):
    """torch.compile over the packed networks (vmap inside): the first iteration to float
    rounding; later ones drift as float32 rounding does under GAN training (test above)."""
    settings = ["norm=bn", "train.iters=3", "final.steps=2"]
    eager = train_packed(tmp_path / "eager", [0, 1], *settings)
    compiled = train_packed(tmp_path / "compiled", [0, 1], *settings, "train.compile=default")
    assert "train.compile=default: the first iteration took" in capsys.readouterr().err
    for seed in (0, 1):
        a, b = numbers(compiled[seed]), numbers(eager[seed])
        assert a.shape == b.shape == (3, 5)
        torch.testing.assert_close(a[0], b[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a, b, rtol=1e-2, atol=1e-4)
        last = torch.load(compiled[seed] / "checkpoints" / "last.ckpt", weights_only=False)
        assert last["hyper_parameters"]["compile"] == "default"
        assert last["state_dict"].keys() == torch.load(
            eager[seed] / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"].keys()


def test_a_packed_sweep_names_each_seed_as_its_run_alone(tmp_path, monkeypatch, capsys):
    """`python -m gansweep -m norm=... 'train.seeds=[...]'`: each seed's directory is the one
    `-m norm=... seed=<s>` makes, the table counts its seeds, and the unpacked command later
    finds them finished."""
    def gansweep(*args):
        return run_gansweep(monkeypatch, capsys, tmp_path, "-m", *args, *TINY)

    out = gansweep("norm=vanilla,wn", "train.seeds=[0,1]")
    (sweep,) = (tmp_path / "outputs" / "sweeps").iterdir()
    # the name the sweep `seed=0,1` gets (cut to a digest where the tiny settings make it long)
    unpacked = ["norm=vanilla,wn", "seed=0,1", *TINY]
    assert sweep.name == sweep_name(unpacked, unchanging_keys())
    summaries = {}
    for path in sweep.glob("*/summary.json"):
        summary = json.loads(path.read_text())
        summaries[summary["norm"], summary["seed"]] = path.parent
        overrides = (path.parent / ".hydra" / "overrides.yaml").read_text()
        assert f"seed={summary['seed']}" in overrides and "train.seeds" not in overrides
    assert sorted(summaries) == [("vanilla", 0), ("vanilla", 1), ("wn", 0), ("wn", 1)]
    assert out.count(" | 2 | 2 finished |") == 2  # vanilla and wn, 2 seeds each
    # the unpacked sweep of the same runs finds each of them, done
    again = gansweep("norm=vanilla,wn", "seed=0,1")
    assert again.count("already finished at iteration 6, skipped") == 4
    assert sorted(Path(line.split("outputs in ")[1]) for line in again.splitlines()
                  if "skipped; outputs in " in line) == sorted(summaries.values())


def test_a_failing_packed_job_records_each_seed_as_failed(tmp_path, monkeypatch, capsys):
    out = run_gansweep(monkeypatch, capsys, tmp_path, "-m", "dataset.image_size=7,32",
                       "train.seeds=[0,1]", *TINY, code=1)
    assert "Traceback" not in out, out[-3000:]
    failed = sorted((tmp_path / "outputs" / "sweeps").rglob("failed.json"))
    assert [json.loads(p.read_text())["seed"] for p in failed] == [0, 1]
    for path in failed:  # each seed's own command line (its name may be cut to a digest)
        overrides = (path.parent / ".hydra" / "overrides.yaml").read_text()
        assert "- seed=" in overrides and "dataset.image_size=7" in overrides
    assert "| wn | 7 | - | - | - | - | - | - | 2 | failed at 0 (seed 0); failed at 0 (seed 1) |" in out
    assert "| 2 | 2 finished |" in out.split("| wn | 32 |")[1].splitlines()[0]


def out_of_memory_beyond(monkeypatch, copies: int, after_calls: int = 0):
    """A GPU (mocked: there is none here) on which a packed network of more than `copies`
    copies runs out of memory, from its `after_calls`-th forward call on."""
    from gansweep.training import capacity
    from gansweep.training.stacking import Packed

    forward, calls = Packed.forward, []

    def limited(self, x):
        calls.append(self.copies)
        if self.copies > copies and len(calls) > after_calls:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(self, x)

    monkeypatch.setattr(Packed, "forward", limited)
    monkeypatch.setattr(capacity, "raises_out_of_memory", lambda device: True)


@pytest.mark.parametrize("free_gib, message", [
    (40, r"3 packed copies ran out of GPU memory in their first iteration \(40.0 GiB free\); "
         r"one copy's iteration needs .* GiB and each further copy .* GiB, so at most 2 fit. Pack at most 2 "
         r"seeds per job, e.g. 'train.seeds=\[0,1\]' then 'train.seeds=\[2\]'.$"),
    (0, r"3 packed copies ran out .* \(0.0 GiB free\); one copy's iteration needs .* GiB, so "
        r"not one fits. Free the GPU, use a smaller train.batch_size"),
])
def test_copies_that_run_out_of_gpu_memory_end_the_job_naming_how_many_fit(
        tmp_path, monkeypatch, free_gib, message):
    """One and two copies' iterations are measured for real (here on the CPU) once the
    three did not fit; nothing of the failed attempt is left as a result."""
    from gansweep.errors import GansweepError
    from gansweep.training import capacity

    out_of_memory_beyond(monkeypatch, copies=2)
    monkeypatch.setattr(capacity, "free_bytes", lambda: free_gib * capacity.GIB)
    with pytest.raises(GansweepError, match=message):
        train_packed(tmp_path, [0, 1, 2])
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("summary.json"))


def test_running_out_of_memory_after_the_first_iteration_is_not_blamed_on_the_copies(
        tmp_path, monkeypatch):
    out_of_memory_beyond(monkeypatch, copies=2, after_calls=5)  # 5 calls: one iteration
    with pytest.raises(torch.OutOfMemoryError, match="Tried to allocate"):
        train_packed(tmp_path, [0, 1, 2])


@pytest.mark.parametrize("one, two, free, fits", [
    (3, 5, 11, 5),   # 1 fixed + 2 per copy
    (3, 5, 10, 4),
    (3, 5, 2, 0),
    (4, 4, 9, 2),    # no growth measured (noise): counted as all per copy
    (5, 12, 40, 5),  # one copy under the growth (noise): nothing fixed
])
def test_the_largest_count_that_fits(one, two, free, fits):
    from gansweep.training.capacity import largest_count

    assert largest_count(one, two, free) == fits
