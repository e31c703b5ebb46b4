"""Before a grid goes to SLURM: ask `sbatch --test-only` whether the cluster can run its jobs.

A grid sent with `hydra/launcher=slurm` to a cluster that lacks what it asks for (GPUs, a
partition, an account) is refused by sbatch before any job exists, and submitit reports that
as a traceback through Hydra. This Hydra callback submits one job of the same shape with
`--test-only` (nothing is queued) first, and on a refusal ends the sweep with one line that
names the hydra.launcher setting to change.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("gansweep")

# (text in sbatch's error, what to do about it); the first match wins
REFUSALS = [
    ("generic resource", "the cluster (or hydra.launcher.partition={partition}) has no such "
     "GPUs for hydra.launcher.gpus_per_node={gpus_per_node}: choose a partition with GPUs "
     "(hydra.launcher.partition=...), or run on CPUs with hydra.launcher.gpus_per_node=null"),
    ("invalid partition", "hydra.launcher.partition={partition} is not a partition of this "
     "cluster (sinfo -s lists them)"),
    ("invalid account", "hydra.launcher.account={account} is not an account you may use "
     "here (sacctmgr show assoc user=$USER lists yours)"),
    ("invalid qos", "hydra.launcher.qos={qos} is not a QOS you may use here"),
    ("time limit", "hydra.launcher.timeout_min={timeout_min} is more than "
     "hydra.launcher.partition={partition} allows: lower it (jobs requeue themselves at "
     "their time limit, see max_num_timeout)"),
    ("node configuration is not available", "no node of hydra.launcher.partition="
     "{partition} has what one job asks for: lower hydra.launcher.gpus_per_node "
     "({gpus_per_node}), cpus_per_task ({cpus_per_task}), mem_gb ({mem_gb}) or nodes "
     "({nodes})"),
]
# hydra.launcher keys that become sbatch options of their own name ("_" -> "-"), and those
# submitit renames; the others (array_parallelism, setup, signal_delay_s, ...) do not
# decide whether SLURM accepts a job
SAME_NAME = ["partition", "account", "qos", "comment", "constraint", "exclude", "gres",
             "nodes", "cpus_per_task", "cpus_per_gpu", "gpus_per_node", "gpus_per_task",
             "mem_per_gpu", "mem_per_cpu"]
RENAMED = {"tasks_per_node": "ntasks-per-node", "timeout_min": "time"}


def _flag(key: str, value) -> str:
    """As submitit writes an sbatch option: underscores become dashes, True a bare flag."""
    key = key.replace("_", "-")
    return f"--{key}" if value is True else f"--{key}={value}"


def sbatch_options(launcher: dict) -> list[str]:
    """The sbatch options of one job of this launcher config."""
    options = [_flag(k, launcher[k]) for k in SAME_NAME if launcher.get(k)]
    options += [_flag(RENAMED[k], launcher[k]) for k in RENAMED if launcher.get(k)]
    if launcher.get("mem_gb"):
        options.append(f"--mem={launcher['mem_gb']}GB")
    options += [_flag(k, v) for k, v in (launcher.get("additional_parameters") or {}).items()]
    return options


def refusal(launcher: dict) -> str | None:
    """sbatch's error for one job of this shape, or None if it would be accepted."""
    test = subprocess.run(["sbatch", "--test-only", "--wrap=true", *sbatch_options(launcher)],
                          capture_output=True, text=True)
    return test.stderr if test.returncode else None


def explain(sbatch_error: str, launcher: dict) -> str:
    """One line: what sbatch refused and which hydra.launcher setting to change."""
    said = " ".join(line.strip().removeprefix("sbatch: ")
                    for line in sbatch_error.strip().splitlines())
    for text, advice in REFUSALS:
        if text in said.lower():
            advice = advice.format_map(_AsWritten(launcher))
            return f"SLURM refuses these jobs: {advice} (sbatch said: {said})"
    return (f"SLURM refuses these jobs (sbatch said: {said}); check the hydra.launcher.* "
            f"settings")


class SlurmPreflight(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        launcher = config.hydra.launcher
        if not str(launcher.get("_target_", "")).endswith("SlurmLauncher"):
            return
        if shutil.which("sbatch") is None:
            return  # submitit will say that sbatch is missing
        settings = OmegaConf.to_container(launcher, resolve=True)
        error = refusal(settings)
        if error:
            log.error(f"gansweep: {explain(error, settings)}")
            # SystemExit passes through Hydra's error report, which would add a traceback
            # to a message that already says everything
            sys.exit(1)


class _AsWritten(dict):
    """Settings as a user writes them on the command line: None is null."""

    def __getitem__(self, key):
        value = self.get(key)
        return "null" if value is None else value
