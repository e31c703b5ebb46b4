"""train.compile: torch.compile of G and D trains as the eager networks do (to rounding),
and resume, divergence and checkpoints behave as documented."""

import csv
import json
from pathlib import Path

import pytest
import torch

from conftest import ARCHS, NORMS, CrashAt, PoisonGenerator, train_run
from gansweep.job import train

pytestmark = pytest.mark.slow

COMPILED = "train.compile=default"
# Resume and divergence compiled: the graphs of one of the cases below, so that inductor's
# cache compiles them once; what these test is the run's bookkeeping, whatever the norm.
COMPILED_RUN = [COMPILED, "norm=vanilla"]


def losses(run: Path) -> torch.Tensor:
    with open(run / "train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return torch.tensor([[float(v) for k, v in r.items() if k != "iter"] for r in rows])


# One case per kind of layer torch.compile has to get right, each architecture at least once
# (a compile takes tens of seconds here, so not every pair): plain layers with bias and PReLU;
# BN's in-place running statistics; strict and affine WN layers, TPReLU and WN addition, in
# the ResNet's blocks; layer norm, with a gradient penalty (whose double backward runs
# through D as built: torch.compile has none). wn_affine (affine WN and PReLU) and the other
# pairs are made of these same layers. sn is refused compiled (the last test).
COMPILE_CASES = [("dcgan", "vanilla", []), ("dcgan", "bn", []), ("resnet", "wn", []),
                 ("dcgan", "ln", ["loss=wasserstein", "penalty=wgan_gp"])]
# the ResNet with one level: fewer graphs to compile, every kind of its layers still in them
SMALLEST = {"dcgan": [], "resnet": ["arch.widths=[8]"]}


def test_the_compile_cases_cover_every_norm_family_and_architecture():
    assert {arch for arch, _, _ in COMPILE_CASES} == set(ARCHS)
    families = {norm.split("_")[0] for norm in NORMS if norm != "sn"}  # wn_affine: wn
    assert {norm for _, norm, _ in COMPILE_CASES} == families
    assert any("penalty=" in o for _, _, extra in COMPILE_CASES for o in extra)


@pytest.mark.parametrize("arch, norm, extra", COMPILE_CASES)
def test_a_compiled_run_trains_as_the_eager_run(make_cfg, tmp_path, capsys, arch, norm, extra):
    short = [f"arch={arch}", f"norm={norm}", *SMALLEST[arch], *extra, "train.iters=3",
             "final.steps=2"]
    eager = train_run(make_cfg(*short, f"run_dir={tmp_path}/eager"))
    compiled = train_run(make_cfg(*short, COMPILED, f"run_dir={tmp_path}/compiled"))
    assert "train.compile=default: the first iteration took" in capsys.readouterr().err
    assert losses(compiled).shape == (3, 4)
    torch.testing.assert_close(losses(compiled), losses(eager), rtol=1e-4, atol=1e-5)
    # the checkpoints hold G and D under the keys of the networks as built
    keys = [set(torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
                ["state_dict"]) for run in (eager, compiled)]
    assert keys[0] == keys[1]


def test_each_compiled_run_of_a_process_compiles_its_own_graphs(make_cfg, tmp_path):
    """A sweep's jobs share one process under Hydra's basic launcher. Dynamo keeps a few
    graphs per function (`recompile_limit`) and past them runs the function eagerly, so
    after a few compiled jobs the rest would train eager under a compiled run's name. Each
    run starts dynamo afresh, as a job in a process of its own does."""
    from torch._dynamo.utils import counters

    for norm in ("vanilla", "bn"):  # graphs the compile cases compile too (inductor's cache)
        before = counters["stats"]["unique_graphs"]
        with torch._dynamo.config.patch(recompile_limit=2):  # reached after one run
            train_run(make_cfg(COMPILED, f"norm={norm}", "train.iters=2", "final.steps=2",
                               # a sweep's jobs as shipped: the progress bar, W&B offline
                               "trainer.enable_progress_bar=true", "wandb.mode=offline",
                               f"run_dir={tmp_path}/{norm}"))
        assert counters["stats"]["unique_graphs"] > before, f"norm={norm} trained eagerly"


def test_a_compiled_run_resumes_exactly(make_cfg, tmp_path):
    straight = train_run(make_cfg(*COMPILED_RUN, f"run_dir={tmp_path}/straight"))
    cfg = make_cfg(*COMPILED_RUN, f"run_dir={tmp_path}/resumed")
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, callbacks=[CrashAt(5)])
    resumed = train_run(cfg)  # from the checkpoint at 3, compiled again
    for name in ("train.csv", "recon.csv"):
        assert (resumed / name).read_text() == (straight / name).read_text()


def test_a_compiled_run_stops_at_its_divergence(make_cfg):
    run = train_run(make_cfg(*COMPILED_RUN, "train.iters=12"), callbacks=[PoisonGenerator(4)])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["diverged_at"] == 5
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["gansweep"]["iteration"] == 3  # nothing saved from the fault on


def test_an_unknown_compile_mode_fails_before_training(make_cfg):
    from gansweep.errors import GansweepError
    from gansweep.validate import validate

    with pytest.raises(GansweepError, match="train.compile=.fast.: must be one of null, default"):
        validate(make_cfg("train.compile=fast"))


@pytest.mark.parametrize("arch", ARCHS)
def test_spectral_norm_is_refused_compiled_with_one_line(make_cfg, arch):
    from gansweep.errors import GansweepError
    from gansweep.validate import validate

    with pytest.raises(GansweepError, match="with norm=sn: .*train.compile=null"):
        validate(make_cfg("norm=sn", f"arch={arch}", COMPILED))
