"""The shipped benchmarks run and report consistent figures (no timing is asserted)."""

import pytest

from gansweep.benchmark import main

pytestmark = pytest.mark.slow


def test_recon_benchmark_reports_its_ratios():
    r = main(["recon", "--image-size", "32", "--width", "8", "--n-images", "40", "--steps", "2"])
    assert r["paper_loop_s"] > 0 and r["batched_s"] > 0 and r["floor_s"] > 0
    assert r["speedup_vs_paper"] == pytest.approx(r["paper_loop_s"] / r["batched_s"])
    assert 0 < r["running_test_share"] < 1


def test_data_benchmark_loads_each_fake_through_its_real_config():
    rows = main(["data", "--datasets", "digits", "cifar10", "mnist", "--images", "200"])
    assert [r["dataset"] for r in rows] == ["digits", "cifar10", "mnist"]
    assert all(r["loader_images_s"] > 0 and r["train_images_s"] > 0 for r in rows)
    assert [r["in_memory"] for r in rows] == [False, True, True]
