"""The shipped benchmarks run and report consistent figures (no timing is asserted)."""

import pytest

from conftest import TINY_NETS
from gansweep.benchmark import main

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
        assert r["syncs_per_iter"] is None  # counted on GPUs only
    vanilla, wn = rows
    assert wn["gansweep_ops"] > vanilla["gansweep_ops"]  # WN normalises every weight


def test_train_benchmark_times_the_compiled_path_and_its_compilation(monkeypatch):
    from gansweep.benchmark import train

    # the tests' tiny networks: the compiled graphs test_compile compiles too (inductor's
    # cache then compiles them once), and the same code path as the README's settings
    monkeypatch.setitem(train.SETTINGS, "tiny", TINY_NETS["dcgan"])
    monkeypatch.setitem(train.PLANS, ("tiny", False), train.PLANS["digits", True])
    (row,) = main(["train", "--settings", "tiny", "--norms", "vanilla", "--log-every", "2",
                   "--reads", "1", "--repeat", "1", "--compile", "default"])
    assert row["setting"] == "tiny"
    assert row["compiled_s"] > 0 and row["compile_s"] > 0
    assert row["compiled_ratio"] == pytest.approx(row["compiled_s"] / row["hand_s"])


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
