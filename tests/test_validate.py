"""Bad configuration fails before training with one clear line."""

import pytest

from gansweep.train import train
from gansweep.validate import ConfigError


@pytest.mark.parametrize("override, message", [
    ("train.iters=0", "train.iters=0: must be a positive number"),
    ("train.lr=-1e-4", "train.lr=-0.0001: must be a positive number"),
    ("train.batch_size=0", "train.batch_size=0: must be a positive number"),
    ("recon.steps=-1", "recon.steps=-1: must be a whole number >= 0"),
    ("recon.n_images=301", "recon.n_images=301 is larger than the held-out set "
                           "(dataset.holdout=300)"),
    ("final.n_images=1000", "final.n_images=1000 is larger than the held-out set"),
    ("dataset.image_size=36", "arch=dcgan with dataset.image_size=36: DCGAN needs an image "
                              "size that halves evenly"),
    ("dataset.image_size=4", "DCGAN needs images of at least 8 px"),
])
def test_bad_settings_fail_before_anything_is_written(make_cfg, tmp_path, override, message):
    cfg = make_cfg(override)
    with pytest.raises(ConfigError) as error:
        train(cfg)
    assert message in str(error.value)
    assert not (tmp_path / "run").exists()  # nothing built, nothing written


def test_resnet_image_size_must_fit_its_levels(make_cfg):
    with pytest.raises(ConfigError, match="multiple of 4"):
        train(make_cfg("arch=resnet", "dataset.image_size=30"))


def test_valid_settings_pass(make_cfg):
    from gansweep.validate import validate

    validate(make_cfg())
    validate(make_cfg("arch=resnet", "norm=sn"))


@pytest.mark.parametrize("overrides, message", [
    (["trainer.devices=2", "train.batch_size=33"],
     "train.batch_size=33 is the global batch, split evenly over the 2 DDP processes"),
    (["trainer.devices=2", "trainer.accelerator=cpu", "trainer.sync_batchnorm=true"],
     "trainer.sync_batchnorm=true needs GPUs"),
])
def test_bad_multi_process_settings_fail_before_training(make_cfg, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        train(make_cfg(*overrides))
    assert not (tmp_path / "run").exists()


def test_resuming_with_another_architecture_or_norm_is_a_clear_error(make_cfg, tmp_path):
    from conftest import CrashAt

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(make_cfg(), callbacks=[CrashAt(4)])  # leaves checkpoints/last.ckpt at 3
    config = (tmp_path / "run" / "config.yaml").read_text()
    for override, names in [("norm=bn", "norm='wn', but this config builds norm='bn'"),
                            ("arch.generator.width=16", "'width': 16")]:
        with pytest.raises(ConfigError, match="holds a model with") as error:
            train(make_cfg(override))
        assert names in str(error.value)
    assert (tmp_path / "run" / "config.yaml").read_text() == config  # the old run untouched
    assert "finished" in train(make_cfg()).joinpath("summary.json").read_text()


@pytest.mark.parametrize("devices, processes", [("1", 1), ("2", 2), ("[0,1,2]", 3), ("auto", 1)])
def test_process_count_reads_every_form_of_trainer_devices(make_cfg, devices, processes):
    from gansweep.train import distributed
    from gansweep.validate import process_count

    trainer = make_cfg(f"trainer.devices={devices}").trainer
    assert process_count(trainer) == processes
    assert ("strategy" in distributed(trainer)) == (processes > 1)


def test_batchnorm_on_a_single_value_fails_before_training_with_one_line(make_cfg, tmp_path):
    cfg = make_cfg("norm=bn", "arch=resnet", "dataset.image_size=4", "train.batch_size=1")
    with pytest.raises(ConfigError, match="single value per channel.*raise train.batch_size"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()
    train(make_cfg("norm=bn", "arch=resnet", "dataset.image_size=4", "train.batch_size=2",
                   "train.iters=1"))  # two images per channel are enough
