"""Run and sweep directory names derived from the command line, never from the clock.

Re-running the same command finds the same directory again, which is how runs resume and
sweeps skip finished runs. The config uses them as resolvers:

    hydra.run.dir:      outputs/runs/${gansweep.run_name:${hydra:job.override_dirname}}
    hydra.sweep.dir:    outputs/sweeps/${gansweep.sweep_name:${hydra.overrides.task},...}
    hydra.sweep.subdir: ${gansweep.run_name:${hydra:job.override_dirname}}

Packed seeds (`train.seeds`, gansweep/training/packed.py) write each seed where the job `seed=<s>`
would: `seed_run_dirs`.

`sweep_name` is made from the sweep's own overrides (e.g. `norm=vanilla,bn,wn`). It is a
cached resolver, and OmegaConf keys its cache by the argument *text*: Hydra copies the
launching process's cache into every job's config (locally and through submitit), so each job
gets the sweep's name rather than one made from its own single overrides.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

MAX_NAME = 200  # under the 255-byte limit of a path component, with room to spare


def _bounded(name: str) -> str:
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name[: MAX_NAME - 11]}-{digest}"


def run_name(override_dirname: str) -> str:
    """The job's overrides as Hydra joins them (`norm=bn,seed=1`), or `default` if none."""
    return _bounded(override_dirname.replace("/", "-") or "default")


def sweep_name(task_overrides: list[str], exclude_keys: list[str]) -> str:
    """The sweep's task overrides, sorted, joined by '+', minus the keys runs ignore.
    Packed seeds (`train.seeds=[0,1]`) name the sweep as `seed=0,1` does, so that the
    packed and the unpacked command write and find the same runs."""
    task_overrides = [_as_seed_sweep(o) for o in task_overrides]
    items = sorted(o for o in task_overrides if o.split("=", 1)[0] not in set(exclude_keys))
    return _bounded("+".join(items).replace("/", "-") or "default")


def _as_seed_sweep(override: str) -> str:
    key, _, value = override.partition("=")
    if key != "train.seeds" or not value.startswith("["):
        return override
    return "seed=" + value.strip("[]").replace(" ", "")


# W&B's Report filters (wandb-workspaces' expr_to_filters) rewrite every '=' into '==', '<' into
# '<=' and '>' into '>=', inside a quoted group name too: a group spelled with them could
# never be selected in a Report. Run and sweep directories keep their names.
_WANDB_SAFE = str.maketrans({"=": ":", "<": "(", ">": ")"})


def wandb_group(name: str) -> str:
    """The W&B group of runs named `name` (a sweep's directory name, or the run's own, or
    `wandb.group`): the name with `=` as `:` (`norm:vanilla,bn,wn`), `<` and `>` as brackets."""
    return name.translate(_WANDB_SAFE)


def result_settings(hydra: DictConfig) -> dict[str, str]:
    """{key: value} of the overrides a run's results depend on, from its Hydra config (the
    live `HydraConfig.get()` or the `hydra` node of the saved `.hydra/hydra.yaml`): its task
    overrides minus the keys runs ignore, i.e. what its directory name is made of (`+key=v`
    counts as `key`)."""
    excluded = set(hydra.job.config.override_dirname.exclude_keys)
    settings = {}
    for override in hydra.overrides.task:
        key, _, value = override.partition("=")
        if key.lstrip("+") not in excluded:
            settings[key.lstrip("+")] = value
    return settings


def shipped_config() -> DictConfig:
    """conf/config.yaml as shipped (not composed: its own keys, Hydra's node included)."""
    return OmegaConf.load(resources.files("gansweep.conf") / "config.yaml")


def unchanging_keys() -> list[str]:
    """The settings that never change a run's results, so they stay out of its directory's
    name: Hydra's `override_dirname.exclude_keys`, as the running app has them, else (train(cfg)
    called directly) as conf/config.yaml ships them."""
    try:
        rule = HydraConfig.get().job.config.override_dirname
    except ValueError:
        rule = shipped_config().hydra.job.config.override_dirname
    return list(rule.exclude_keys)


def seed_overrides(task: list[str], seed: int) -> list[str]:
    """The command line of `seed=<seed>` alone: the job's, train.seeds (and seed) replaced."""
    keep = [o for o in task if o.lstrip("+~").split("=", 1)[0] not in ("train.seeds", "seed")]
    return [*keep, f"seed={seed}"]


def seed_dirname(hydra: DictConfig, seed: int) -> str:
    """The directory name Hydra gives the job `seed=<seed>` (its rule for
    `hydra.job.override_dirname`: the overrides not excluded, sorted, joined)."""
    rule = hydra.job.config.override_dirname
    lines = sorted(o for o in seed_overrides(list(hydra.overrides.task), seed)
                   if o.split("=", 1)[0] not in set(rule.exclude_keys))
    return run_name(re.sub("=", rule.kv_sep, rule.item_sep.join(lines)))


def seed_run_dirs(cfg: DictConfig) -> dict[int, Path]:
    """{seed: its run directory}: beside the job's directory, named as Hydra names the job
    `seed=<s>`; without Hydra (train(cfg) called directly), `<run_dir>/seed=<s>`."""
    try:
        hydra = HydraConfig.get()
    except ValueError:
        return {s: Path(cfg.run_dir) / f"seed={s}" for s in cfg.train.seeds}
    parent = Path(hydra.runtime.output_dir).parent
    return {s: parent / seed_dirname(hydra, s) for s in cfg.train.seeds}


def folder_name(root: str) -> str:
    """dataset=folder's name: `folder-<the folder's name>`, so that two folders get two
    splits (and two table rows) instead of one name for both."""
    return f"folder-{Path(str(root)).resolve().name}"


def register() -> None:
    if not OmegaConf.has_resolver("gansweep.run_name"):
        OmegaConf.register_new_resolver("gansweep.folder_name", folder_name)
        OmegaConf.register_new_resolver("gansweep.run_name", run_name)
        OmegaConf.register_new_resolver("gansweep.sweep_name", sweep_name, use_cache=True)


register()
