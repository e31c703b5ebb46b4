"""Bad configuration fails before training with one clear line."""

import pytest
from conftest import train_run

from gansweep.job import train
from gansweep.validate import ConfigError, validate


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
    ("train.seeds=3", "train.seeds=3: must be a list of distinct whole numbers"),
    # a key nobody reads: refused, with the nearest real one
    ("+train.iter=5", "train.iter: no such setting, so nothing would read it; did you mean "
                      "train.iters?"),
    ("+recon.stepz=3", "did you mean recon.steps?"),
    ("+wandb.projet=x", "did you mean wandb.project?"),
    ("+paths.out=x", "paths.out: no such setting"),
    ("+dataset.rot=x", "did you mean dataset.root?"),
    ("+lr=1", "lr: no such setting, so nothing would read it; the settings of the root "
              "config are"),
    # a node Hydra instantiates takes its target's parameters
    ("+trainer.max_step=5", "did you mean trainer.max_steps?"),
    ("+arch.generator.widht=8", "did you mean arch.generator.width?"),
    ("+train.optimizer.momentun=0.9", "did you mean train.optimizer.momentum?"),
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


def files_of(run_dir):
    return {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}


def test_resuming_with_another_architecture_or_norm_is_a_clear_error(make_cfg, tmp_path):
    from conftest import CrashAt

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(make_cfg(), callbacks=[CrashAt(4)])  # leaves checkpoints/last.ckpt at 3
    before = files_of(tmp_path / "run")
    for override, names in [("norm=bn", "started with norm.name=wn, but this command gives "
                                        "norm.name=bn"),
                            ("arch.generator.width=16", "arch.generator.width=8, but this "
                                                        "command gives arch.generator.width=16")]:
        with pytest.raises(ConfigError, match="holds a run started with") as error:
            train(make_cfg(override))
        assert names in str(error.value) and "\n" not in str(error.value)
    assert files_of(tmp_path / "run") == before  # the old run untouched
    assert "finished" in train_run(make_cfg()).joinpath("summary.json").read_text()


def test_a_run_is_never_resumed_or_skipped_under_other_result_changing_settings(make_cfg,
                                                                               tmp_path):
    """Resumed with another learning rate, a run's rows would be the old rate's (the
    checkpoint's optimiser state wins) and its config.yaml the new one's: refused before
    anything is written, naming each setting and both values; the same for a finished
    run, and for a checkpoint beyond train.iters."""
    from conftest import CrashAt

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(make_cfg(), callbacks=[CrashAt(5)])  # last.ckpt at 3 of 6
    run = tmp_path / "run"
    before = files_of(run)
    lr = make_cfg().train.lr  # the digits DCGAN's
    with pytest.raises(ConfigError) as error:
        train(make_cfg("train.lr=1e-3", "penalty=wgan_gp"))
    assert str(error.value) == (
        f"{run} holds a run started with train.lr={lr}, penalty.name=none, but this command "
        f"gives train.lr=0.001, penalty.name=wgan_gp: run it with the settings it was started "
        f"with, or give this run a directory of its own (hydra.run.dir=...)")
    with pytest.raises(ConfigError, match=f"{run}/checkpoints/last.ckpt is at iteration 3, "
                                          f"beyond train.iters=2: resume it with "
                                          f"train.iters=3 or more"):
        train(make_cfg("train.iters=2"))
    assert files_of(run) == before
    # what never changes results may change; so may an unfinished run's last iteration
    train(make_cfg("train.log_every=2", "trainer.enable_progress_bar=true",
                   "train.iters=9"))
    straight = train_run(make_cfg("train.iters=9", f"run_dir={tmp_path}/straight"))
    for name in ("train.csv", "recon.csv"):
        assert (run / name).read_text() == (straight / name).read_text()
    finished = files_of(run)
    with pytest.raises(ConfigError, match=f"train.lr={lr}, but this command gives "
                                          f"train.lr=0.0002"):
        train(make_cfg("train.lr=2e-4", "train.iters=9"))
    with pytest.raises(ConfigError, match="train.iters=9, but this command gives "
                                          "train.iters=12"):
        train(make_cfg("train.iters=12"))  # a finished run's last iteration is a result
    assert files_of(run) == finished


def test_a_run_started_before_a_module_moved_resumes(make_cfg, tmp_path):
    """A run directory's config.yaml names the classes that built it where they lived then
    (the GAN module was `gansweep.gan.GAN` before the package took role folders): a resume
    after the move goes on as the uninterrupted run."""
    from conftest import CrashAt

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(make_cfg(), callbacks=[CrashAt(5)])
    config = tmp_path / "run" / "config.yaml"
    moved = "_target_: gansweep.training.gan.GAN"
    assert moved in config.read_text()
    config.write_text(config.read_text().replace(moved, "_target_: gansweep.gan.GAN"))
    resumed = train_run(make_cfg())
    straight = train_run(make_cfg(f"run_dir={tmp_path}/straight"))
    for name in ("train.csv", "recon.csv"):
        assert (resumed / name).read_text() == (straight / name).read_text()


@pytest.mark.parametrize("devices, processes", [("1", 1), ("2", 2), ("[0,1,2]", 3), ("auto", 1)])
def test_process_count_reads_every_form_of_trainer_devices(make_cfg, devices, processes):
    from gansweep.training.trainer import distributed
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


def declared(schema, prefix=""):
    """(key, type, declaration) of every setting gansweep/settings.py declares."""
    from dataclasses import fields, is_dataclass
    from typing import get_type_hints

    kinds = get_type_hints(schema)
    for spec in fields(schema):
        if is_dataclass(kinds[spec.name]):
            yield from declared(kinds[spec.name], f"{prefix}{spec.name}.")
        else:
            yield prefix + spec.name, kinds[spec.name], spec.metadata


def all_declared():
    from gansweep.settings import Dataset, Settings

    return [*declared(Settings), *declared(Dataset, "dataset.")]


# Keys some data sets lack: checked on one that has them
HAS = {"dataset.root": "dataset=celeba", "dataset.crop": "dataset=celeba",
       "dataset.download": "dataset=mnist"}


def needs(key):
    return [HAS[key]] if key in HAS else []


@pytest.mark.parametrize("key, kind, declaration",
                         [d for d in all_declared() if "range" in d[2]], ids=lambda d: str(d))
def test_every_declared_range_is_checked_with_one_line(make_cfg, key, kind, declaration):


    bad = 0 if declaration["range"] == "positive" else -1
    with pytest.raises(ConfigError) as error:
        validate(make_cfg(*needs(key), f"{key}={bad}"))
    assert str(error.value).startswith(f"{key}={bad}: must be")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("key, kind, declaration",
                         [d for d in all_declared() if set(getattr(d[1], "__args__", [d[1]]))
                          <= {int, float, bool, type(None)}],
                         ids=lambda d: str(d))
def test_every_declared_type_is_checked_with_one_line(make_cfg, key, kind, declaration):


    with pytest.raises(ConfigError) as error:
        validate(make_cfg(*needs(key), f"{key}=abc"))
    assert str(error.value).startswith(f"{key}='abc': must be")
    assert "\n" not in str(error.value)


def test_a_data_set_config_without_a_declared_setting_is_refused(make_cfg):


    with pytest.raises(ConfigError, match="dataset.holdout is not set"):
        validate(make_cfg("~dataset.holdout", "final.n_images=16"))


def test_a_key_the_code_reads_may_be_added(make_cfg):


    # a Trainer parameter the shipped config does not set, and RMSprop's momentum
    validate(make_cfg("+trainer.gradient_clip_val=1.0", "+train.optimizer.momentum=0.5"))


@pytest.mark.parametrize("overrides, message", [
    (["train.lr=nan"], "train.lr=nan: must be a finite number"),
    (["recon.lr=inf"], "recon.lr=inf: must be a finite number"),
    (["final.lr=-inf"], "final.lr=-inf: must be a finite number"),
    (["penalty=wgan_gp", "penalty.weight=nan"], "penalty.weight=nan: must be a finite number"),
])
def test_nan_and_inf_are_refused_where_a_number_is_checked(make_cfg, tmp_path, overrides,
                                                          message):
    """NaN passes `value <= 0`: a NaN penalty weight trained and "diverged" with exit 0."""
    with pytest.raises(ConfigError) as error:
        train(make_cfg(*overrides))
    assert str(error.value) == message
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_sweep_job_refused_for_other_settings_fails_alone_and_clears_once_settled(
        tmp_path, monkeypatch, capsys):
    """In a sweep the refusal is the job's failure (failed.json, the sweep exits 1, the
    other jobs go on); once the command matches the run again, the finished run is skipped
    and the stale failure record goes."""
    from conftest import TINY, run_gansweep

    sweep = ["-m", "norm=vanilla,wn", *TINY]
    run_gansweep(monkeypatch, capsys, tmp_path, *sweep)
    (config,) = (tmp_path / "outputs" / "sweeps").glob("*/*norm=wn,*/config.yaml")
    original = config.read_text()
    config.write_text(original.replace("lr: 0.0005", "lr: 0.0003", 1))  # started otherwise
    said = run_gansweep(monkeypatch, capsys, tmp_path, *sweep, code=1)
    assert "holds a run started with train.lr=0.0003, but this command gives train.lr=0.0005" \
        in said and "Traceback" not in said
    assert (config.parent / "failed.json").exists() and (config.parent / "summary.json").exists()
    assert said.count("run already finished") == 1  # vanilla's, untouched
    config.write_text(original)
    said = run_gansweep(monkeypatch, capsys, tmp_path, *sweep)
    assert said.count("run already finished") == 2 and not (config.parent / "failed.json").exists()


def test_a_rate_given_on_the_first_command_line_and_left_to_its_default_later_is_refused(
        make_cfg, tmp_path):
    """train.lr is `${arch.lr}` unless given: resumed without the train.lr=1e-3 it was
    started with, the run would go on at the architecture's rate, arch.lr unchanged."""
    from conftest import CrashAt

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(make_cfg("train.lr=1e-3"), callbacks=[CrashAt(5)])
    default = make_cfg().train.lr
    with pytest.raises(ConfigError) as error:
        train(make_cfg())
    assert f"started with train.lr=0.001, but this command gives train.lr={default}:" \
        in str(error.value)


def test_what_a_norm_allows_is_the_norms_to_say(make_cfg, monkeypatch):
    """Packing and compiling are refused where the norm's layers say why (today: sn's
    in-place power iteration), with the norm's own reason."""
    from gansweep.method.norms import VARIANTS

    assert [n for n, v in VARIANTS.items() if v.cannot_pack or v.cannot_compile] == ["sn"]
    monkeypatch.setattr(VARIANTS["wn"], "cannot_pack", "a reason of wn's")
    with pytest.raises(ConfigError, match=r"packed seeds do not work with norm=wn \(a reason "
                                          r"of wn's\)"):
        validate(make_cfg("train.seeds=[0,1]"))
    monkeypatch.setattr(VARIANTS["wn"], "cannot_compile", "another reason")
    with pytest.raises(ConfigError, match="train.compile='default' with norm=wn: another "
                                          "reason; train wn eagerly"):
        validate(make_cfg("train.compile=default"))


def test_a_penalty_under_a_norm_that_mixes_the_batch_is_noted_once(make_cfg, tmp_path, caplog):
    import logging

    from gansweep.validate import penalty_caveat

    with caplog.at_level(logging.WARNING, logger="gansweep"):
        train(make_cfg("norm=bn", "penalty=wgan_gp"))
    said = "\n".join(r.getMessage() for r in caplog.records if r.name == "gansweep")
    assert said.count("gansweep: note: norm=bn with penalty=wgan_gp: BN makes D's output on "
                      "an image depend on the rest of its batch") == 1
    assert "norm=ln" in said  # what to use instead
    assert penalty_caveat(make_cfg("norm=bn")) is None  # no penalty, nothing to say
    for norm in ("vanilla", "ln", "wn", "wn_affine", "sn"):
        assert penalty_caveat(make_cfg(f"norm={norm}", "penalty=dragan")) is None
