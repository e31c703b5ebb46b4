"""The shipped benchmarks run and report consistent figures (no timing is asserted)."""

import pytest

from conftest import TINY_NETS
from gansweep.benchmark import main
from gansweep.errors import GansweepError

pytestmark = pytest.mark.slow


def test_recon_benchmark_reports_its_ratios():
    r = main(["recon", "--image-size", "32", "--width", "8", "--n-images", "40", "--steps", "2"])
    assert r["paper_loop_s"] > 0 and r["batched_s"] > 0 and r["floor_s"] > 0
    assert r["speedup_vs_paper"] == pytest.approx(r["paper_loop_s"] / r["batched_s"])
    assert 0 < r["running_test_share"] < 1


def test_data_benchmark_loads_each_fake_through_its_real_config():
    rows = main(["data", "--datasets", "digits", "cifar10", "celeba", "--images", "200",
                 "--seconds", "0.5"])
    assert [r["dataset"] for r in rows] == ["digits", "cifar10", "celeba", "celeba"]
    assert all(r["loader_images_s"] > 0 and r["train_images_s"] > 0 for r in rows)
    assert [r["in_memory"] for r in rows] == [False, True, False, False]
    assert [r["cache"] for r in rows] == [False, False, False, True]  # celeba both ways


def test_train_benchmark_times_both_loops_and_counts_their_ops():
    rows = main(["train", "--settings", "digits", "--norms", "vanilla", "wn",
                 "--log-every", "2", "--reads", "1", "--repeat", "1"])
    assert [(r["setting"], r["norm"]) for r in rows] == [("digits", "vanilla"), ("digits", "wn")]
    for r in rows:
        assert r["hand_s"] > 0 and r["gansweep_s"] > 0
        assert r["ratio"] == pytest.approx(r["gansweep_s"] / r["hand_s"])
        # gansweep dispatches what the hand-written loop does, give or take its loss row
        assert abs(r["gansweep_ops"] - r["hand_ops"]) <= 0.05 * r["hand_ops"]
        # eager code on a CPU: the kernel counter counts about what the op counter counts
        # (ops an op calls inside itself are its work, not kernels of their own)
        for loop in ("hand", "gansweep"):
            assert 0.9 * r[f"{loop}_ops"] <= r[f"{loop}_kernels"] <= r[f"{loop}_ops"]
        assert r["syncs_per_iter"] is None  # counted on GPUs only
        assert r["hand_busy"] is r["gansweep_busy"] is None  # no device to leave idle
    vanilla, wn = rows
    assert wn["gansweep_ops"] > vanilla["gansweep_ops"]  # WN normalises every weight


def test_train_benchmark_times_the_compiled_path_and_counts_its_kernels(monkeypatch):
    from gansweep.benchmark import train

    # the tests' tiny networks, the same code path as the README's settings
    monkeypatch.setitem(train.SETTINGS, "tiny", TINY_NETS["dcgan"])
    monkeypatch.setitem(train.PLANS, ("tiny", False), train.PLANS["digits", True])
    (row,) = main(["train", "--settings", "tiny", "--norms", "wn", "--log-every", "2",
                   "--reads", "1", "--repeat", "1", "--compile", "default"])
    assert row["setting"] == "tiny"
    assert row["compiled_s"] > 0 and row["compile_s"] > 0
    assert row["compiled_ratio"] == pytest.approx(row["compiled_s"] / row["hand_s"])
    # inductor fuses TPReLU's and the losses' elementwise ops: fewer kernels than eager ops
    assert 0 < row["compiled_kernels"] < 0.9 * row["gansweep_ops"]


def test_train_benchmark_compares_each_norm_to_vanilla_eager_and_compiled(capsys):
    from argparse import Namespace

    from gansweep.benchmark.train import report

    def row(norm, seconds, ops, compiled_s, kernels):
        return {"setting": "digits", "norm": norm, "penalty": "none", "hand_s": seconds,
                "gansweep_s": seconds, "ratio": 1.0, "hand_ops": ops, "gansweep_ops": ops,
                "hand_kernels": ops, "gansweep_kernels": ops + 1, "hand_busy": None,
                "gansweep_busy": 0.25, "syncs_per_iter": None, "compiled_s": compiled_s,
                "compiled_ratio": 1.0, "compile_s": 2.0, "compiled_kernels": kernels,
                "compiled_busy": 0.8}

    report([row("vanilla", 0.050, 250, 0.040, 200), row("wn", 0.060, 375, 0.046, 230)],
           Namespace(quick=True, compile="default", overrides=["+train.optimizer.foreach=true"]))
    said = capsys.readouterr().out
    assert "on cpu x" in said and "(quick), +train.optimizer.foreach=true;" in said
    assert "| digits | wn | 60.0 | 60.0 | 1.000 | 375 | 375 | - | 375 | 376 | - | 25% |" in said
    assert "| digits | wn | 60.0 | 46.0 | 0.767 | 1.000 | 2.0 | 375 | 230 | 376 | 25% | 80% |" \
        in said
    assert "digits: wn / vanilla (gansweep): 1.20x time, 1.50x ops" in said
    assert "digits: wn / vanilla (compiled): 1.15x time, 1.15x kernels" in said


def test_train_benchmark_refuses_an_override_the_config_does_not_take_in_one_line():
    for override, says in [("train.nope=1", "Could not override 'train.nope'"),
                           ("train.lr=nan", "train.lr=nan: must be a finite number")]:
        with pytest.raises(GansweepError) as refused:  # one line through run_command
            main(["train", "--settings", "digits", "--norms", "wn", "--overrides", override])
        said = str(refused.value)
        assert said.startswith(f"--overrides {override}: {says}") and "\n" not in said


def pointwise_chain(x, a):
    return ((x - a).relu() * 2 + a).sum((1, 2))


def test_the_kernel_counter_counts_eager_code_as_the_op_counter_does():
    import torch
    import torch.nn.functional as F

    from gansweep.benchmark.train import KernelCounter, OpCounter

    x, a, w = torch.randn(4, 3, 8, 8), torch.randn(3, 1, 1), torch.randn(5, 3, 3, 3)

    def step():
        pointwise_chain(x, a)  # sub, relu, mul, add, sum
        y = F.conv2d(x, w).flatten(1)  # convolution, a view
        return F.linear(y, torch.ones(2, 180)).t().contiguous()  # ones, mm, a view, clone

    with OpCounter() as ops, KernelCounter() as kernels:
        step()
    assert kernels.kernels == ops.ops == 9


def test_the_gpus_busy_time_is_the_union_of_its_kernels_intervals():
    import random

    from gansweep.benchmark.train import busy_seconds

    # by hand: [0, 10] and [5, 12] overlap (two streams), [20, 25] alone, [21, 22] inside it
    assert busy_seconds([(20, 25), (0, 10), (21, 22), (5, 12)]) == pytest.approx(17e-6)
    assert busy_seconds([]) == 0
    # against counting the covered microseconds one by one
    rng = random.Random(0)
    for _ in range(200):
        spans = [(a, a + rng.randint(0, 30)) for a in (rng.randint(0, 100) for _ in range(8))]
        covered = {t for start, end in spans for t in range(start, end)}
        assert busy_seconds(spans) == pytest.approx(len(covered) * 1e-6)


def test_train_benchmark_prices_a_gradient_penalty_against_none(monkeypatch, capsys):
    from gansweep.benchmark import train

    monkeypatch.setitem(train.SETTINGS, "tiny", TINY_NETS["dcgan"])
    monkeypatch.setitem(train.PLANS, ("tiny", False), train.PLANS["digits", True])
    rows = main(["train", "--settings", "tiny", "--norms", "wn", "--penalties", "none",
                 "dragan", "--log-every", "2", "--reads", "1", "--repeat", "1"])
    assert [(r["norm"], r["penalty"]) for r in rows] == [("wn", "none"), ("wn", "dragan")]
    without, dragan = rows
    # the penalty's forward through D and its double backward: more ops, in both loops alike
    assert dragan["gansweep_ops"] > 1.3 * without["gansweep_ops"]
    assert abs(dragan["gansweep_ops"] - dragan["hand_ops"]) <= 0.05 * dragan["hand_ops"]
    said = capsys.readouterr().out
    assert "| tiny | wn + dragan |" in said
    ratio = dragan["gansweep_s"] / without["gansweep_s"]
    assert f"tiny: wn with dragan / without (gansweep): {ratio:.2f}x time" in said


def test_memory_benchmark_measures_training_and_the_evaluator():
    (row,) = main(["memory", "--archs", "dcgan", "--images", "4", "--iterations", "1"])
    assert row["arch"] == "dcgan"
    assert row["train_peak_mib"] > 0 and row["evaluator_peak_mib"] > 0
    assert row["final_test_one_chunk_gib"] == pytest.approx(
        row["per_image_mib"] * 2000 / 1024)


def test_packed_benchmark_reports_model_iterations_per_k(capsys):
    rows = main(["packed", "--quick", "--settings", "digits", "--norms", "bn",
                 "--copies", "1", "3"])
    assert [(r["norm"], r["copies"]) for r in rows] == [("bn", 1), ("bn", 3)]
    for r in rows:
        assert r["packed_models_per_s"] == pytest.approx(r["copies"] / r["packed_s"])
        assert r["apart_models_per_s"] == pytest.approx(r["copies"] / r["apart_s"])
    one, three = rows
    assert three["packed_peak_mib"] > one["packed_peak_mib"]  # three copies' activations
    assert "| digits | bn | 3 |" in capsys.readouterr().out


def test_the_kernel_counter_sees_a_compiled_chain_of_ops_as_one_kernel():
    import torch
    from torch._inductor import config as inductor_config

    from gansweep.benchmark.train import KernelCounter

    x, a = torch.randn(4, 3, 8, 8), torch.randn(3, 1, 1)
    with inductor_config.patch({"cpp.enable_kernel_profile": True}):
        fused = torch.compile(pointwise_chain)
        fused(x, a)
    with KernelCounter() as eager:
        pointwise_chain(x, a)
    with KernelCounter() as compiled:
        fused(x, a)
    assert (eager.kernels, compiled.kernels) == (5, 1)


def test_quality_benchmark_gives_each_parts_share_at_both_schedules(capsys):
    r = main(["quality", "--final-steps", "2", "quality.n_samples=100",
              "quality.kid_subset_size=50", "recon.n_images=8", "recon.steps=2",
              "final.n_images=16", "final.steps=10"])
    seconds = r["seconds"]
    assert all(v > 0 for v in seconds.values()) and set(r["per_metric_s"]) == {"fid", "kid"}
    for schedule in ("default_schedule", "papers_schedule"):
        shares = r[schedule]["shares"]
        assert sum(shares.values()) == pytest.approx(1)
    # the default run: 2000 iterations, both tests at 250, 500, ..., 2000 (8 each)
    d = r["default_schedule"]
    total = seconds["training"] * 2000 + 8 * (seconds["running test"]
                                             + seconds["sample quality"]) \
        + seconds["final test"] + seconds["quality set-up"]
    assert d["shares"]["sample quality"] == pytest.approx(8 * seconds["sample quality"] / total)
    assert "share of a run at the paper's schedule" in capsys.readouterr().out
