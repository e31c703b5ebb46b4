"""Settings reach what they name, and those that never change results never split runs."""

from pathlib import Path

import pytest
from conftest import ARCHS, DATASETS, NORMS, choices
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

# What the docs and conf/ document as never changing a run's results
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
    # (gansweep.rundir.names.result_settings) both leave out exclude_keys
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


# --- Every documented setting reaches what it names -------------------------------------
# A setting is documented when conf/ (with gansweep/settings.py) composes it for some option
# of the norm, arch and dataset groups. Wiring (data.*, model.*, dataset.source.*, the
# WIRED_FROM keys, _target_ and friends) is not a setting: overriding it is refused.

def documented_settings() -> set[str]:
    from gansweep.validate import WIRED_FROM

    keys = set()

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            elif not key.startswith("_"):
                keys.add(prefix + key)

    for group, options in (("norm", NORMS), ("arch", ARCHS), ("dataset", DATASETS),
                           ("loss", choices("loss")), ("penalty", choices("penalty"))):
        for option in options:
            walk(OmegaConf.to_container(composed(f"{group}={option}")), "")
    return {key for key in keys if not key.startswith(("data.", "model.", "dataset.source."))
            and key not in WIRED_FROM}


def optimiser_defaults(built, name):
    return [opt.defaults[name] for opt in built.model.configure_optimizers()]


def modules(net, kind):
    return [m for m in net.modules() if isinstance(m, kind)]


def resnet_widths(net, kind, channels=3):
    """A ResNet's level widths, finest first, read off its convolutions."""
    outs = dict.fromkeys(m.out_channels for m in modules(net.blocks, kind))
    widths = [c for c in outs if c != channels]
    return widths if kind is nn.Conv2d else widths[::-1]


def seed_run_dirs(cfg):
    from gansweep.rundir.names import seed_run_dirs

    return seed_run_dirs(cfg)


def restarts_allowed(built):
    from gansweep.rundir import restarts

    return [sum(restarts.wanted(built.cfg.train, 0, attempt) for attempt in range(50))]


def latest_restart_iteration(built):
    from gansweep.rundir import restarts

    return [max(i for i in range(50) if restarts.wanted(built.cfg.train, i, 0))]


ELSEWHERE = "a directory of its own"  # the test gives it one under tmp_path
CELEBA = ["dataset=celeba", "dataset.holdout=16", "dataset.cache=false"]
MNIST = ["dataset=mnist", "dataset.holdout=16"]
RESNET = ["arch=resnet", "norm=vanilla"]
OFFLINE = ["wandb.mode=offline"]
QUALITY = ["quality.metrics=[fid,kid]"]  # off by default

# setting -> (value, what the run's built objects show, overrides it needs)
REACHES = {
    "seed": (7, lambda b: [b.data.seed, b.model.hparams.seed], []),
    # read after training, by gansweep/__main__.py: tests/test_objective.py checks its value
    "objective": ("running_loss", lambda b: [b.cfg.objective], []),
    "run_dir": (ELSEWHERE, lambda b: [b.last.path.parent.parent], []),
    "train.iters": (7, lambda b: [b.data.iters, b.recon.last, b.last.last, b.samples.last], []),
    "train.batch_size": (8, lambda b: [b.data.batch_size], []),
    "train.lr": (0.003, lambda b: optimiser_defaults(b, "lr"), []),
    "arch.lr": (0.003, lambda b: optimiser_defaults(b, "lr"), []),
    "train.optimizer.alpha": (0.8, lambda b: optimiser_defaults(b, "alpha"), []),
    "train.optimizer.eps": (1e-7, lambda b: optimiser_defaults(b, "eps"), []),
    "train.ckpt_every": (4, lambda b: [b.last.every], []),
    "train.sample_every": (4, lambda b: [b.samples.every], []),
    "train.log_every": (4, lambda b: [b.losses.every, b.stopper.every], []),
    "train.compile": ("default", lambda b: [b.model.compile_mode], []),
    "train.restart_on_early_divergence": (5, latest_restart_iteration, []),
    "train.max_restarts": (2, restarts_allowed, []),
    "train.seeds": ([3, 4], lambda b: [sorted(seed_run_dirs(b.cfg))], []),
    "recon.every": (4, lambda b: [b.recon.every], []),
    "recon.n_images": (7, lambda b: [b.recon.n_images], []),
    "recon.steps": (4, lambda b: [b.recon.settings.steps], []),
    "recon.lr": (0.02, lambda b: [b.recon.settings.lr], []),
    "recon.chunk_size": (5, lambda b: [b.recon.settings.chunk_size], []),
    "quality.metrics": (["kid"], lambda b: [list(b.quality.settings.metrics)], []),
    "quality.every": (4, lambda b: [b.quality.every], QUALITY),
    "quality.n_samples": (7, lambda b: [b.quality.settings.n_samples], QUALITY),
    "quality.extractor": ("digits-classifier", lambda b: [b.quality.settings.extractor],
                          QUALITY),
    "quality.inception_weights": (ELSEWHERE, lambda b: [Path(b.quality.settings
                                                             .inception_weights)], QUALITY),
    "quality.kid_subsets": (7, lambda b: [b.quality.settings.kid_subsets], QUALITY),
    "quality.kid_subset_size": (9, lambda b: [b.quality.settings.kid_subset_size], QUALITY),
    # the final test runs when training ends (gansweep.run.final_test)
    "final.n_images": (12, lambda b: [b.final_summary()["final_n_images"]], []),
    "final.steps": (3, lambda b: [b.final.steps], []),
    "final.lr": (0.02, lambda b: [b.final.lr], []),
    "final.chunk_size": (5, lambda b: [b.final.chunk_size], []),
    "dataset.image_size": (16, lambda b: [b.model.hparams.image_size,
                                          b.data.dataset[0][0].shape[-1]], []),
    "dataset.channels": (1, lambda b: [b.model.hparams.channels,
                                       b.data.dataset[0][0].shape[0]], []),
    "dataset.holdout": (50, lambda b: [len(b.data.split.heldout)], []),
    "dataset.split_seed": (3, lambda b: [b.data.split.seed], []),
    "dataset.num_workers": (1, lambda b: [b.data.num_workers], []),
    "dataset.in_memory": (True, lambda b: [type(b.data.dataset).__name__ == "DecodedImages"],
                          []),
    "dataset.cache": (True, lambda b: [b.data.dataset.path is not None], CELEBA),
    "dataset.name": ("digits_b", lambda b: [b.data.name, b.identity["dataset"]], []),
    "dataset.root": (ELSEWHERE, lambda b: [Path(b.data_source.root)], CELEBA),
    "dataset.crop": (100, lambda b: [b.data_source.transform.transforms[0].size[0]], CELEBA),
    # torchvision asks for the download (the network itself is not reachable here)
    "dataset.download": (True, lambda b: b.downloads[:1] or [False], MNIST),
    "paths.data_root": (ELSEWHERE, lambda b: [Path(b.data_source.root).parent], CELEBA),
    "paths.cache_dir": (ELSEWHERE, lambda b: [Path(b.data.dataset.path).parents[1]],
                        [*CELEBA, "dataset.cache=true"]),
    "paths.split_dir": (ELSEWHERE, lambda b: [b.data.split_path.parent], []),
    "paths.output_dir": (ELSEWHERE, lambda b: [b.data.split_path.parent.parent], []),
    "norm.name": ("bn", lambda b: [b.model.hparams.norm, "bn" if modules(
        b.model.generator, nn.BatchNorm2d) else "not bn"], []),
    "loss.name": ("hinge", lambda b: [b.model.hparams.loss, b.model.loss.name], []),
    "penalty.name": ("dragan", lambda b: [b.model.hparams.penalty["name"],
                                          b.model.penalty.name], ["penalty=wgan_gp"]),
    "penalty.weight": (2.5, lambda b: [b.model.hparams.penalty["weight"],
                                       b.model.penalty.weight], ["penalty=wgan_gp"]),
    "arch.name": ("dcgan_b", lambda b: [b.identity["arch"]], []),  # a label, as W&B shows it
    "arch.generator.width": (16, lambda b: [modules(b.model.generator,
                                                    nn.ConvTranspose2d)[-1].in_channels],
                             ["norm=vanilla"]),
    "arch.discriminator.width": (16, lambda b: [modules(b.model.discriminator,
                                                        nn.Conv2d)[0].out_channels],
                                 ["norm=vanilla"]),
    "arch.generator.code_dim": (20, lambda b: [b.model.generator.code_dim,
                                               b.model.generator.project.in_features],
                                ["norm=vanilla"]),
    "arch.widths": ([8, 16, 24], lambda b: [resnet_widths(b.model.discriminator, nn.Conv2d),
                                            resnet_widths(b.model.generator,
                                                          nn.ConvTranspose2d)], RESNET),
    "arch.blocks": (2, lambda b: [len(b.model.discriminator.blocks) // 2,
                                  len(b.model.generator.blocks) // 2], RESNET),
    "wandb.mode": ("offline", lambda b: ["offline" if b.logger._offline else "online"], []),
    "wandb.project": ("p_b", lambda b: [b.logger._wandb_init["project"]], OFFLINE),
    "wandb.entity": ("team_b", lambda b: [b.logger._wandb_init["entity"]], OFFLINE),
    "wandb.group": ("group_b", lambda b: [b.logger._wandb_init["group"]], OFFLINE),
    "trainer.accelerator": ("cpu", lambda b: [type(b.trainer.accelerator).__name__[:3].lower()],
                            []),
    "trainer.devices": (2, lambda b: [b.trainer.num_devices], []),
    "trainer.num_nodes": (2, lambda b: [b.trainer.num_nodes], []),
    "trainer.strategy": ("ddp", lambda b: [type(b.trainer.strategy).__name__[:3].lower()], []),
    "trainer.sync_batchnorm": (
        True, lambda b: [b.trainer._accelerator_connector._layer_sync is not None], []),
    "trainer.deterministic": (False, lambda b: [b.deterministic], []),
    "trainer.max_epochs": (2, lambda b: [b.trainer.max_epochs], []),
    "trainer.enable_progress_bar": (True, lambda b: [b.trainer.progress_bar_callback is not None],
                                    []),
    "trainer.enable_checkpointing": (True, lambda b: [b.trainer.checkpoint_callback is not None],
                                     []),
    "trainer.enable_model_summary": (True, lambda b: [any("ModelSummary" in type(c).__name__
                                                          for c in b.trainer.callbacks)], []),
    # with W&B on, W&B is the logger (gansweep/training/wandb_logger.py) and this one is not used
    "trainer.logger": (True, lambda b: [b.trainer.logger is not None], []),
    "trainer.log_every_n_steps": (5, lambda b: [b.trainer.log_every_n_steps], []),
    "trainer.num_sanity_val_steps": (2, lambda b: [b.trainer.num_sanity_val_steps], []),
    "trainer.use_distributed_sampler": (
        True, lambda b: [b.trainer._accelerator_connector.use_distributed_sampler], []),
}


def test_every_documented_setting_has_a_check_of_where_it_arrives():
    documented = documented_settings()
    assert documented - REACHES.keys() == set(), "settings nobody shows to reach anything"
    assert REACHES.keys() - documented == set(), "checks of settings conf/ no longer has"


class Built:
    """What `gansweep.job.build_group` builds from a config for its run, with a few views on
    it."""

    def __init__(self, cfg, run_dir, downloads):
        import torch

        from gansweep.job import build_group
        from gansweep.run import recon_settings
        from gansweep.rundir import records

        self.cfg, self.downloads = cfg, downloads
        group = build_group(cfg, {cfg.seed: cfg}, {cfg.seed: Path(run_dir)})
        run, = group.runs
        self.__dict__.update(vars(group), logger=run.logger, **vars(run.writers))
        self.deterministic = torch.are_deterministic_algorithms_enabled()
        self.identity = records.identity(cfg)
        self.final = recon_settings(cfg.final)
        source = self.data.dataset
        self.data_source = getattr(source, "dataset", source)

    def final_summary(self) -> dict:
        """Trains the run, then gansweep.run.finish's summary (the final test's numbers)."""
        from gansweep.run import finish

        self.trainer.fit(self.model, datamodule=self.data)
        return finish(self.cfg, Path(self.cfg.run_dir), self.data, self.model, self.recon)


@pytest.mark.slow
@pytest.mark.parametrize("setting", sorted(REACHES))
def test_an_override_reaches_what_it_names(setting, tmp_path, monkeypatch):
    import torch
    import torchvision
    from conftest import compose_config

    from gansweep.data import fakes
    from gansweep.validate import validate

    value, observe, needs = REACHES[setting]
    if value == ELSEWHERE:
        value = tmp_path / "elsewhere"
    data_root = value if setting == "paths.data_root" else tmp_path / "data"
    fakes.write_celeba(value if setting == "dataset.root" else data_root / "celeba")
    fakes.write_mnist(data_root / "mnist")
    downloads = []
    monkeypatch.setattr(torchvision.datasets.MNIST, "download",
                        lambda self: downloads.append(True))  # the one thing not reachable here
    text = str(value).replace(" ", "") if isinstance(value, list) else value
    cfg = compose_config(tmp_path, f"paths.data_root={data_root}", *needs,
                         f"{setting}={str(text).lower() if isinstance(value, bool) else text}")
    validate(cfg)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True)
    deterministic, built = torch.are_deterministic_algorithms_enabled(), None
    try:
        built = Built(cfg, run_dir, downloads)
        seen = observe(built)
    finally:
        torch.use_deterministic_algorithms(deterministic)
        if built is not None and built.logger:
            built.logger.experiment.finish()
    assert seen and all(s == value for s in seen), f"{setting}={value} arrived as {seen}"
