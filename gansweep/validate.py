"""Checks a run's config before anything is built, so bad input fails with one clear line
(`gansweep: <key>=<value>: what is wrong; how to fix it`) instead of deep inside torch."""

from __future__ import annotations

import inspect
import math
from dataclasses import MISSING, fields, is_dataclass
from difflib import get_close_matches
from typing import get_args, get_type_hints

import torch
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from gansweep.errors import GansweepError
from gansweep.method.losses import NO_PENALTY
from gansweep.method.norms import VARIANTS, Layers
from gansweep.rundir.names import shipped_config
from gansweep.settings import Dataset, Loss, Penalty, Settings


class ConfigError(GansweepError):
    pass


# Keys that conf/config.yaml wires from a setting (the objects Hydra instantiates need
# them), -> that setting: its one name. Overriding the wiring instead would change one use
# of the setting but not the others, or not the run's name.
WIRED_FROM = {
    "data.name": "dataset.name", "data.holdout": "dataset.holdout",
    "data.split_seed": "dataset.split_seed", "data.num_workers": "dataset.num_workers",
    "data.in_memory": "dataset.in_memory", "data.cache": "dataset.cache",
    "data.batch_size": "train.batch_size", "data.iters": "train.iters", "data.seed": "seed",
    "model.norm": "norm.name", "model.image_size": "dataset.image_size",
    "model.channels": "dataset.channels", "model.seed": "seed", "model.compile": "train.compile",
    "train.optimizer.lr": "train.lr",
    "arch.generator.widths": "arch.widths", "arch.discriminator.widths": "arch.widths",
    "arch.generator.blocks": "arch.blocks", "arch.discriminator.blocks": "arch.blocks",
}
_ABSENT = object()


def validate(cfg: DictConfig) -> None:
    _check_nothing_unread(cfg)
    _check_declared(cfg.dataset, Dataset, "dataset.")
    _check_declared(cfg.loss, Loss, "loss.")
    _check_declared(cfg.penalty, Penalty, "penalty.")
    _check_penalty_weight(cfg.penalty)
    _check_declared(cfg, Settings)
    _check_one_name_per_setting(cfg)
    holdout = cfg.dataset.holdout
    for key in ("recon.n_images", "final.n_images"):
        if OmegaConf.select(cfg, key) > holdout:
            raise ConfigError(
                f"{key}={OmegaConf.select(cfg, key)} is larger than the held-out set "
                f"(dataset.holdout={holdout}); lower {key} or raise dataset.holdout (which "
                f"makes a new split, so results are not comparable with the old one)")
    compile_mode, norm = cfg.train.compile, norm_layers(cfg)
    if compile_mode is not None and norm.cannot_compile:
        raise ConfigError(f"train.compile={compile_mode!r} with norm={norm.name}: "
                          f"{norm.cannot_compile}; train {norm.name} eagerly "
                          f"(train.compile=null)")
    _check_quality(cfg)
    _check_distributed(cfg)
    _check_packed_seeds(cfg)
    _check_networks(cfg)


def _check_quality(cfg: DictConfig) -> None:
    """Sample quality in Inception's features needs its weights file, read from disk only:
    a missing one is said before anything is built."""
    from gansweep.quality.evaluation import resolved_extractor
    from gansweep.quality.extractors import check_inception_weights, default_inception_weights

    quality = cfg.quality
    if quality.metrics and resolved_extractor(quality.extractor, cfg.dataset.name) == "inception":
        check_inception_weights(quality.inception_weights or default_inception_weights())


def norm_layers(cfg: DictConfig) -> type[Layers]:
    """The norm's layers, which say what the norm allows."""
    if cfg.norm.name not in VARIANTS:
        raise ConfigError(f"norm.name={cfg.norm.name!r} is no norm: choose the norm with "
                          f"norm=<{'|'.join(sorted(VARIANTS))}> (conf/norm/)")
    return VARIANTS[cfg.norm.name]


def penalty_caveat(cfg: DictConfig) -> str | None:
    """What the run's gradient penalty means under its norm, where that needs saying."""
    caveat = norm_layers(cfg).penalty_caveat
    if caveat and cfg.penalty.name != NO_PENALTY:
        return f"norm={cfg.norm.name} with penalty={cfg.penalty.name}: {caveat}"
    return None


def _check_nothing_unread(cfg: DictConfig) -> None:
    """A key that no code reads (`+train.typo=5`) is refused: it would be accepted, change
    the run's name, and do nothing. Settings nodes know their keys from gansweep/settings.py
    and conf/config.yaml; a node Hydra instantiates, from its target's parameters."""
    shipped = shipped_config()  # the keys of its plain (not instantiated) nodes
    known = {
        "": {*shipped, *(f.name for f in fields(Settings)), "norm", "arch", "dataset", "loss",
             "penalty"} - {"defaults", "hydra"},
        "dataset": {*(f.name for f in fields(Dataset)), "source"},
        "loss": {f.name for f in fields(Loss)}, "penalty": {f.name for f in fields(Penalty)},
        "wandb": set(shipped.wandb), "paths": set(shipped.paths),
        **{f.name: {g.name for g in fields(f.type)} for f in fields(Settings)
           if is_dataclass(f.type)},
    }
    for prefix, keys in known.items():
        node = OmegaConf.select(cfg, prefix) if prefix else cfg
        _refuse_unknown(prefix, [k for k in node if k not in keys and k != "hydra"], keys)
    for prefix, node in _instantiated(cfg):
        parameters = _parameters(node["_target_"])
        if parameters is not None:
            keys = [k for k in node if not (k.startswith("_") and k.endswith("_"))]
            _refuse_unknown(prefix, [k for k in keys if k not in parameters], parameters,
                            of_target=True)


def _refuse_unknown(prefix: str, unknown: list, keys, of_target: bool = False) -> None:
    if not unknown:
        return
    key = f"{prefix}.{unknown[0]}" if prefix else str(unknown[0])
    near = get_close_matches(str(unknown[0]), sorted(map(str, keys)), n=1)
    hint = f"did you mean {prefix + '.' if prefix else ''}{near[0]}? " if near else ""
    where = prefix or "the root config"
    listed = f"the settings of {where} are: {', '.join(sorted(map(str, keys)))}" \
        if not of_target or len(keys) <= 15 else f"{where} takes its target's parameters"
    raise ConfigError(f"{key}: no such setting, so nothing would read it; {hint}{listed}")


def _instantiated(cfg: DictConfig, prefix: str = ""):
    """(dotted key, node) of every node with a `_target_`, outside Hydra's own."""
    for key in cfg:
        if key == "hydra":
            continue
        node = cfg._get_node(key)
        if isinstance(node, DictConfig):
            path = f"{prefix}{key}"
            if "_target_" in node:
                yield path, node
            yield from _instantiated(node, path + ".")


def _parameters(target: str) -> set[str] | None:
    """The keyword parameters `target` takes (None: it takes any, or cannot be inspected)."""
    try:
        signature = inspect.signature(get_object(target))
    except Exception:  # noqa: BLE001  a bad target is reported when it is instantiated
        return None
    if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        return None
    return set(signature.parameters)


def _check_declared(node: DictConfig, schema: type, prefix: str = "") -> None:
    """Every setting `schema` declares (gansweep/settings.py) against its type and range."""
    kinds = get_type_hints(schema)
    for spec in fields(schema):
        key = prefix + spec.name
        if spec.name not in node:
            if spec.default is MISSING and spec.default_factory is MISSING:
                raise ConfigError(f"{key} is not set: gansweep/settings.py ({schema.__name__}) "
                                  f"declares it without a default, so the config must set it")
            continue
        value, kind = node[spec.name], kinds[spec.name]
        if is_dataclass(kind):
            _check_declared(value, kind, key + ".")
        else:
            _check_value(key, _plain(value), kind, spec.metadata)


_KIND_NAMES = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}


def _check_value(key: str, value, kind, declared) -> None:
    optional = type(None) in get_args(kind)
    if optional:
        kind = next(arg for arg in get_args(kind) if arg is not type(None))
    if "subset_of" in declared:
        choices = declared["subset_of"]
        if not isinstance(value, list) or any(v not in choices for v in value) \
                or len(set(value)) < len(value):
            raise ConfigError(f"{key}={value!r}: must be a list of distinct ones of "
                              f"{', '.join(choices)} (e.g. '{key}=[{','.join(choices)}]'; "
                              f"[] for none)")
        return
    if "choices" in declared and value not in declared["choices"]:
        names = ", ".join("null" if choice is None else choice for choice in declared["choices"])
        raise ConfigError(f"{key}={value!r}: must be one of {names}")
    if value is None:
        if optional:
            return
        raise ConfigError(f"{key}=null: must be {_KIND_NAMES.get(kind, 'set')}")
    if kind in _KIND_NAMES and not _is_a(value, kind):
        raise ConfigError(f"{key}={value!r}: must be {_KIND_NAMES[kind]}")
    if isinstance(value, float) and not math.isfinite(value):  # nan passes `value <= 0`
        raise ConfigError(f"{key}={value!r}: must be a finite number")
    if declared.get("range") == "positive" and value <= 0:
        raise ConfigError(f"{key}={value!r}: must be a positive number")
    if declared.get("range") == "non_negative" and value < 0:
        raise ConfigError(f"{key}={value!r}: must be a whole number >= 0")


def _check_penalty_weight(penalty: DictConfig) -> None:
    weight = penalty.get("weight")
    if penalty.name == NO_PENALTY and weight is not None:
        raise ConfigError(f"penalty.weight={weight} with penalty=none: there is no penalty to "
                          f"weigh; choose one (penalty=wgan_gp or penalty=dragan) or drop "
                          f"penalty.weight")
    if penalty.name != NO_PENALTY and weight is None:
        raise ConfigError(f"penalty={penalty.name} needs penalty.weight (a positive number; "
                          f"10 in conf/penalty/{penalty.name}.yaml)")


def _is_a(value, kind) -> bool:
    if isinstance(value, bool):
        return kind is bool  # a bool is an int to Python, never to a config
    return isinstance(value, (int, float)) if kind is float else isinstance(value, kind)


def _check_one_name_per_setting(cfg: DictConfig) -> None:
    for wiring, setting in WIRED_FROM.items():
        used = OmegaConf.select(cfg, wiring, default=_ABSENT)
        named = OmegaConf.select(cfg, setting, default=_ABSENT)
        if _ABSENT not in (used, named) and used != named:
            raise ConfigError(f"{wiring}={_plain(used)!r} differs from {setting}="
                              f"{_plain(named)!r}: {wiring} is wired from {setting}, the "
                              f"setting's one name; override {setting} instead")


def _plain(value):
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def process_count(trainer: DictConfig) -> int:
    """DDP processes of one run, as far as the config says (`devices=auto` counts as 1:
    Lightning decides then)."""
    devices = trainer.devices
    per_node = len(devices) if OmegaConf.is_list(devices) else devices
    return per_node * trainer.num_nodes if isinstance(per_node, int) else 1


def _check_distributed(cfg: DictConfig) -> None:
    trainer = cfg.trainer
    processes = process_count(trainer)
    if cfg.train.batch_size % processes:
        raise ConfigError(
            f"train.batch_size={cfg.train.batch_size} is the global batch, split evenly over "
            f"the {processes} DDP processes; make it a multiple of {processes}")
    on_gpu = trainer.accelerator in ("gpu", "cuda") or (
        trainer.accelerator == "auto" and torch.cuda.is_available())
    if trainer.sync_batchnorm and processes > 1 and not on_gpu:
        raise ConfigError(
            "trainer.sync_batchnorm=true needs GPUs (torch's SyncBatchNorm runs only on CUDA); "
            "on CPU leave it false: BN then normalises each process's slice of the batch")


def _check_packed_seeds(cfg: DictConfig) -> None:
    seeds = _plain(cfg.train.seeds)
    if seeds is None:
        return
    if not isinstance(seeds, list) or not seeds or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds) \
            or len(set(seeds)) < len(seeds):
        raise ConfigError(f"train.seeds={seeds!r}: must be a list of distinct whole numbers "
                          f">= 0, e.g. 'train.seeds=[0,1,2,3]' (or null: one run, of seed)")
    if cfg.seed != Settings.seed:
        raise ConfigError(f"seed={cfg.seed} with train.seeds={seeds}: the seeds trained are "
                          f"train.seeds'; drop seed=... (or train.seeds, for one run)")
    refused = [reason for applies, reason in (
        (norm_layers(cfg).cannot_pack is not None,
         f"norm={cfg.norm.name} ({norm_layers(cfg).cannot_pack})"),
        (process_count(cfg.trainer) > 1, "more than one process (packed seeds run in one)"),
        (cfg.train.restart_on_early_divergence > 0,
         "train.restart_on_early_divergence (restarts are per run)"),
    ) if applies]
    if refused:
        raise ConfigError(f"train.seeds={seeds}: packed seeds do not work with "
                          f"{refused[0]}; train these seeds one by one instead "
                          f"(-m seed={','.join(map(str, seeds))})")


def _check_networks(cfg: DictConfig) -> None:
    """Build G and D once on the meta device (no memory, no compute) to surface shape errors
    such as an image size the architecture cannot take."""
    shape = dict(norm=cfg.norm.name, image_size=cfg.dataset.image_size,
                 channels=cfg.dataset.channels)
    try:
        with torch.device("meta"):
            generator = instantiate(cfg.arch.generator, **shape)
            discriminator = instantiate(cfg.arch.discriminator, **shape)
    except Exception as error:
        cause = error.__cause__ or error  # Hydra wraps errors raised inside instantiate
        raise ConfigError(f"arch={cfg.arch.name} with dataset.image_size="
                          f"{cfg.dataset.image_size}: {cause}") from None
    _check_one_training_batch(cfg, generator, discriminator)


def _check_one_training_batch(cfg: DictConfig, generator, discriminator) -> None:
    """One forward pass of a process's batch through G and D, on the meta device (shapes
    only), in training mode: BN needs more than one value per channel in every layer."""
    batch = max(1, cfg.train.batch_size // process_count(cfg.trainer))
    try:
        with torch.device("meta"), torch.no_grad():
            discriminator(generator(torch.empty(batch, generator.code_dim)))
    except Exception as error:  # noqa: BLE001
        if "more than 1 value per channel" not in str(error):
            return  # an op without a meta kernel, say: training itself will tell
        raise ConfigError(
            f"norm={cfg.norm.name} arch={cfg.arch.name} dataset.image_size="
            f"{cfg.dataset.image_size} train.batch_size={cfg.train.batch_size}: a BatchNorm "
            f"layer would normalise a single value per channel ({batch} image(s) per process "
            f"on its smallest map); raise train.batch_size or dataset.image_size") from None
