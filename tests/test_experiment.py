"""The paper's grid as a Hydra experiment config: `+experiment=paper`."""

import itertools
import json

import pytest
from conftest import run_gansweep
from hydra import compose, initialize_config_module

from gansweep.rundir.names import wandb_group  # the module registers the root config's resolvers

GRID = {"norm": ["vanilla", "bn", "wn"], "arch": ["dcgan", "resnet"],
        "dataset": ["celeba", "lsun_bedroom", "cifar10"]}


def paper(*overrides, hydra=False):
    with initialize_config_module("gansweep.conf", version_base="1.3"):
        return compose("config", overrides=["+experiment=paper", *overrides],
                       return_hydra_config=hydra)


def test_the_paper_experiment_sweeps_the_papers_18_variants():
    params = paper(hydra=True).hydra.sweeper.params
    assert {key: value.split(",") for key, value in params.items()} == GRID


@pytest.mark.parametrize("norm, arch, dataset", list(itertools.product(*GRID.values())))
def test_each_paper_run_has_the_papers_settings(norm, arch, dataset):
    cfg = paper(f"norm={norm}", f"arch={arch}", f"dataset={dataset}",
                "paths.data_root=/data")
    assert (cfg.norm.name, cfg.arch.name, cfg.dataset.name) == (norm, arch, dataset)
    assert cfg.train.iters == 1_000_000 and cfg.train.batch_size == 32
    assert cfg.train.lr == {"dcgan": 1e-4, "resnet": 2e-5}[arch]
    assert (cfg.train.optimizer.alpha, cfg.train.optimizer.eps) == (0.9, 1e-6)
    assert (cfg.recon.every, cfg.recon.n_images, cfg.recon.steps) == (500, 200, 50)
    assert cfg.final.n_images == cfg.dataset.holdout == 2000
    assert cfg.dataset.root == f"/data/{dataset}"
    assert cfg.dataset.image_size == (32 if dataset == "cifar10" else 64)


def test_command_line_overrides_still_win():
    cfg = paper("train.iters=10", "recon.every=5")
    assert (cfg.train.iters, cfg.recon.every) == (10, 5)


@pytest.mark.slow
def test_the_paper_grid_launches_18_runs_each_failing_alone_without_its_data(tmp_path,
                                                                            monkeypatch,
                                                                            capsys):
    """Here none of the paper's data sets exists: every one of the 18 runs stops at once with
    the path it looked at, and the sweep still ends with its table."""
    monkeypatch.setenv("GANSWEEP_DATA", str(tmp_path / "no-data"))
    # failed runs make the sweep exit 1, after the table
    # (sample quality off: Inception's weights cannot be had here, and they are checked
    # before the data)
    said = run_gansweep(monkeypatch, capsys, tmp_path, "-m", "+experiment=paper",
                        "wandb.mode=disabled", "quality.metrics=[]", code=1)
    failed = list(tmp_path.glob("outputs/sweeps/*/*/failed.json"))
    assert len(failed) == 18
    assert "data set 'lsun_bedroom' not found at" in said
    (sweep,) = (tmp_path / "outputs" / "sweeps").iterdir()
    assert sweep.name.startswith("+experiment=paper") and (sweep / "table.md").exists()


# --- +experiment=landscape: norm x loss x penalty ------------------------------------------

def landscape(*overrides, hydra=False):
    with initialize_config_module("gansweep.conf", version_base="1.3"):
        return compose("config", overrides=["+experiment=landscape", *overrides],
                       return_hydra_config=hydra)


def landscape_grid() -> dict[str, list[str]]:
    params = landscape(hydra=True).hydra.sweeper.params
    return {key: value.split(",") for key, value in params.items()}


def test_the_landscape_crosses_every_packable_paper_norm_loss_and_penalty():
    from conftest import NORMS, choices

    grid = landscape_grid()
    # the documented subset: every norm packed seeds can run but the authors' extra variant
    assert set(grid["norm"]) == set(NORMS) - {"sn", "wn_affine"}
    assert set(grid["loss"]) == set(choices("loss"))
    assert set(grid["penalty"]) == set(choices("penalty"))
    assert len(list(itertools.product(*grid.values()))) == 48


@pytest.mark.parametrize("point", [dict(zip(landscape_grid(), values)) for values in
                                   itertools.product(*landscape_grid().values())],
                         ids=lambda point: "-".join(point.values()))
def test_every_landscape_point_composes_and_validates(point, tmp_path):
    from gansweep.validate import validate

    cfg = landscape(*(f"{k}={v}" for k, v in point.items()), f"paths.output_dir={tmp_path}")
    validate(cfg)  # packed seeds, the penalty's weight, the networks: all accepted
    assert (cfg.norm.name, cfg.loss.name, cfg.penalty.name) == tuple(point.values())
    assert list(cfg.train.seeds) == [0, 1, 2]
    assert (cfg.penalty.get("weight") == 10) == (point["penalty"] != "none")


@pytest.mark.slow
def test_a_few_landscape_points_run_end_to_end_split_by_loss_and_penalty(tmp_path, monkeypatch,
                                                                        capsys):
    from conftest import TINY
    from wandb_files import offline_runs

    small = [o for o in TINY if not o.startswith("wandb.")]
    said = run_gansweep(monkeypatch, capsys, tmp_path, "-m", "+experiment=landscape",
                        "norm=ln", "loss=hinge,wasserstein", "penalty=none,dragan",
                        "train.seeds=[0,1]", *small, "wandb.mode=offline")
    (sweep,) = (tmp_path / "outputs" / "sweeps").iterdir()
    summaries = sorted(sweep.glob("*/summary.json"))
    assert len(summaries) == 8  # 4 points x 2 seeds, each its own run
    said_of = [json.loads(p.read_text()) for p in summaries]
    assert sorted((s["loss"], s["penalty"], s["seed"]) for s in said_of) == sorted(
        itertools.product(("hinge", "wasserstein"), ("none", "dragan"), (0, 1)))
    header = next(line for line in said.splitlines() if line.startswith("| norm"))
    assert header.startswith("| norm | loss | penalty | best iteration")
    rows = [line for line in said.splitlines() if line.startswith("| ln |")]
    assert len(rows) == 4 and all("| 2 | 2 finished |" in row for row in rows)
    runs = offline_runs(sweep)
    assert len(runs) == 8
    assert {(r.config["loss"], r.config["penalty"]) for r in runs} == {
        (loss, penalty) for loss in ("hinge", "wasserstein") for penalty in ("none", "dragan")}
    assert {r.run.run_group for r in runs} == {wandb_group(sweep.name)}
