"""Settings reach what they name, and those that never change results never split runs."""

import pytest
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from conftest import ARCHS

# What the README and conf/ document as never changing a run's results
NEVER_CHANGE_RESULTS = [
    "paths.output_dir", "paths.data_root", "paths.cache_dir", "dataset.root",
    "dataset.download", "dataset.num_workers", "dataset.in_memory", "dataset.cache",
    "data.num_workers", "data.in_memory", "data.cache", "data.cache_dir", "data.pin_memory",
    "recon.chunk_size", "final.chunk_size", "train.log_every",
    "wandb.mode", "wandb.project", "wandb.entity", "wandb.group",
    "trainer.enable_progress_bar", "trainer.devices", "trainer.num_nodes",
]


def composed(*overrides, hydra=False):
    with initialize_config_module("gansweep.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("key", ["arch.lr", "train.lr"])
def test_the_learning_rate_reaches_both_optimisers_on_the_default_data(arch, key):
    cfg = composed(f"arch={arch}", f"{key}=0.00123")
    model = instantiate(cfg.model)
    assert [opt.defaults["lr"] for opt in model.configure_optimizers()] == [0.00123] * 2


def test_settings_that_never_change_results_are_left_out_of_run_names_and_rows():
    # the run directory (hydra.job.override_dirname) and the report's rows
    # (gansweep.runs.result_settings) both leave out exclude_keys
    excluded = composed(hydra=True).hydra.job.config.override_dirname.exclude_keys
    missing = [key for key in NEVER_CHANGE_RESULTS if key not in excluded]
    assert not missing, f"documented as never changing results, yet split runs: {missing}"


@pytest.mark.parametrize("override, name", [
    ("data.num_workers=3", "dataset.num_workers"), ("data.batch_size=8", "train.batch_size"),
    ("model.image_size=16", "dataset.image_size"), ("train.optimizer.lr=0.1", "train.lr"),
    ("arch.generator.widths=[8,16]", "arch.widths"),
])
def test_overriding_the_wiring_of_a_setting_names_the_setting(override, name):
    from gansweep.errors import GansweepError
    from gansweep.validate import validate

    with pytest.raises(GansweepError, match=f"override {name} instead"):
        validate(composed("arch=resnet", override))
    validate(composed("arch=resnet"))  # the wiring as conf/ has it is consistent
