"""What only a CUDA GPU can show; skipped without one (the CI machine has none).

On a machine with a GPU, `bash launch/gpu_check.sh OUT_DIR` runs these and every benchmark
docs/benchmarks.md quotes, in at most 8 minutes.
"""

import json

import pytest
import torch
from conftest import TINY_RUN, compose_config, numbers, train_packed, train_run

from gansweep.benchmark.train import SETTINGS
from gansweep.job import train

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

DCGAN64 = [*TINY_RUN, *SETTINGS["dcgan64"], "train.iters=4", "norm=wn"]


def packed(tmp_path, seeds, *overrides):
    return train_packed(tmp_path, seeds, *overrides, tiny=False)


@pytest.fixture
def gpu_share():
    """Sets the share of the GPU this process may use (a smaller GPU), and gives it back."""
    def limit(allowed_bytes: int) -> None:
        torch.cuda.empty_cache()
        total = torch.cuda.mem_get_info()[1]
        torch.cuda.set_per_process_memory_fraction(min(allowed_bytes / total, 1.0))
    yield limit
    torch.cuda.set_per_process_memory_fraction(1.0)
    torch.cuda.empty_cache()


def test_copies_too_many_for_the_gpu_end_naming_a_count_that_then_fits(tmp_path, gpu_share):
    from gansweep.errors import GansweepError
    from gansweep.training import capacity
    from gansweep.training.packed import packed_gan_factory

    cfg = compose_config(tmp_path, *DCGAN64, tiny=False)
    build = packed_gan_factory(cfg, list(range(8)))
    one, two = capacity.iteration_peak(cfg, build, 1), capacity.iteration_peak(cfg, build, 2)
    fixed, per_copy = capacity.growth(one, two)
    # room for about three copies' iterations beside what torch already holds
    gpu_share(torch.cuda.memory_reserved() + fixed + int(3.5 * per_copy))
    with pytest.raises(GansweepError, match=r"8 packed copies ran out .* at most \d fit") as e:
        packed(tmp_path / "eight", range(8), *DCGAN64)
    fits = int(str(e.value).split("at most ")[1].split()[0])
    assert 1 <= fits < 8
    dirs = packed(tmp_path / "fits", range(fits), *DCGAN64)
    assert all(json.loads((d / "summary.json").read_text())["status"] == "finished"
               for d in dirs.values())


def test_steady_state_iterations_do_not_wait_for_the_gpu(tmp_path):
    """Between two reads of the losses (every train.log_every iterations) nothing reads a
    GPU value back: the window's syncs are the reads' own, one each."""
    from gansweep.benchmark.train import Plan, Window, compose_run

    plan = Plan(log_every=5, reads=3, repeat=1)
    cfg = compose_run(tmp_path, "dcgan64", "wn", plan, "run")
    window = Window(plan)
    train(cfg, callbacks=[window])
    assert window.syncs is not None and window.syncs <= plan.reads


def test_the_train_benchmark_sees_the_gpus_kernels_and_its_busy_share():
    """What only a GPU shows the benchmark: launches counted from the profiler's CUDA
    events, and the share of the iteration the device spent running them."""
    from gansweep.benchmark import main

    (row,) = main(["train", "--settings", "digits", "--norms", "wn", "--log-every", "2",
                   "--reads", "1", "--repeat", "1"])
    for loop in ("hand", "gansweep"):
        assert 0.5 * row[f"{loop}_ops"] <= row[f"{loop}_kernels"] <= 2 * row[f"{loop}_ops"]
        assert 0 < row[f"{loop}_busy"] <= 1.05, loop  # the profiler's clock vs the timer's
    assert row["syncs_per_iter"] is not None


@pytest.mark.parametrize("norm", ["vanilla", "bn", "wn"])
def test_packed_seeds_on_a_gpu_train_as_their_runs_alone(tmp_path, norm):
    """In float64, so that cuDNN's grouped against single convolutions round alike."""
    settings = [*TINY_RUN, f"norm={norm}", "train.iters=10", "+trainer.precision=64-true"]
    dirs = packed(tmp_path, [0, 1], *settings)
    for seed, run_dir in dirs.items():
        cfg = compose_config(tmp_path, *settings, f"seed={seed}",
                             f"run_dir='{tmp_path}/alone{seed}'", tiny=False)
        x, y = numbers(run_dir), numbers(train_run(cfg))
        assert len(x) == len(y) == 10 and torch.allclose(x, y, rtol=1e-4), seed


def test_packed_seeds_compiled_with_cuda_graphs_train_as_the_eager_packed_ones(tmp_path):
    settings = [*TINY_RUN, "norm=wn", "train.iters=3", "final.steps=2"]
    eager = packed(tmp_path / "eager", [0, 1], *settings)
    graphed = packed(tmp_path / "graphed", [0, 1], *settings, "train.compile=reduce-overhead")
    for seed in (0, 1):
        a, b = numbers(graphed[seed]), numbers(eager[seed])
        assert len(a) == len(b) == 3
        torch.testing.assert_close(a[0], b[0], rtol=1e-4, atol=1e-5)


def test_a_run_compiled_with_cuda_graphs_repeats_itself(tmp_path):
    """`trainer.deterministic` (on by default) promises that a rerun gives the same numbers;
    whether CUDA graphs keep that promise is one condition for making them a GPU default."""
    settings = [*TINY_RUN, "norm=wn", "train.iters=3", "final.steps=2",
                "train.compile=reduce-overhead"]
    first, again = (numbers(train_run(compose_config(
        tmp_path, *settings, f"run_dir='{tmp_path}/run{i}'", tiny=False))) for i in (0, 1))
    assert len(first) == 3 and torch.equal(first, again)
