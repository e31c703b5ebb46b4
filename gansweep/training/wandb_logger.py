"""W&B: one run per job, offline unless asked otherwise, the GAN iteration as its x-axis.

- `wandb.mode`: offline (default; files under the run directory, `wandb sync` uploads them
  later), online, or disabled (no W&B at all). `WANDB_MODE` sets the default.
- group = the sweep (its directory name) or, for a single run, the run's name; job_type =
  the norm; tags = arch, dataset, norm; config = the resolved Hydra config flattened to dotted
  keys, plus `norm`, `arch`, `dataset`, `loss`, `penalty` and `seed` at the top, so the
  dashboard can group and filter by them, and `settings`: the command line's overrides that
  change results.
- Every metric is plotted against `trainer/iter`; `recon/running` also keeps its minimum.
  W&B's own step (`_step`) is the GAN iteration too, one row per iteration
  (`IterationLogger`); the final test's numbers and image go to the summary.
- The run id is kept in `<run dir>/wandb_id.txt`, so a resumed job continues the same run:
  each process writes a piece of it (its own folder), and a resumed one logs only the
  iterations after those the earlier pieces hold (gansweep/training/wandb_pieces.py), replaying the
  ones it resumes past from the run's files. Uploaded in order (`wandb sync`), the pieces are
  one history with each iteration once.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from gansweep.errors import GansweepError
from gansweep.rundir.names import result_settings, wandb_group
from gansweep.training.wandb_pieces import held_through


def flat_config(cfg: DictConfig) -> dict:
    """{'train.lr': 1e-4, ...} plus the keys runs are compared by: each config group's
    choice under the group's name (`norm`, `loss`, ...) and the seed."""
    flat = {}

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    flat.update(norm=cfg.norm.name, arch=cfg.arch.name, dataset=cfg.dataset.name,
                loss=cfg.loss.name, penalty=cfg.penalty.name, seed=cfg.seed)
    return flat


def command_line_settings() -> dict[str, str]:
    """The overrides the run's results depend on (`gansweep.rundir.names.result_settings`), so that
    the report built from W&B splits its rows as the one built from files does."""
    try:
        hydra = HydraConfig.get()
    except ValueError:  # not inside a Hydra app (train(cfg) called directly)
        return {}
    return result_settings(hydra)


def sweep_group(run_dir: Path) -> str:
    """The sweep directory's name inside a Hydra multirun, else the run's own name."""
    try:
        hydra = HydraConfig.get()
        if hydra.mode == RunMode.MULTIRUN:
            return Path(hydra.sweep.dir).name
    except ValueError:  # not inside a Hydra app (train(cfg) called directly)
        pass
    return run_dir.name


def run_id(run_dir: Path) -> str:
    path = run_dir / "wandb_id.txt"
    if not path.exists():
        if rank_zero_only.rank != 0:  # only rank 0 logs; the others must not race it here
            return "not-rank-zero"
        path.write_text(uuid.uuid4().hex[:12])
    return path.read_text().strip()


class IterationLogger(WandbLogger):
    """Lightning's W&B logger with one W&B row per GAN iteration, at W&B step = the iteration.

    Lightning's `log_metrics` leaves W&B's step to W&B, which counts calls, from 0 in each
    process: the pieces of a resumed run then overlapped, and the iterations between the last
    checkpoint and a kill were in two of them. Here every value comes with its iteration
    (`trainer/iter`) and waits in its row until `flush_rows`, which the run's loss history
    calls once all of an iteration's values are in (gansweep.training.callbacks.LossHistory); rows
    go out in iteration order, each whole. Iterations an earlier piece of the run holds
    (`held_through`) are left out."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.held_through = 0  # the last iteration W&B holds from the run's earlier pieces
        self._rows: dict[int, dict] = {}  # iteration -> its values not yet sent
        self._sent_through = 0

    @rank_zero_only
    def log_metrics(self, metrics, step=None) -> None:
        iteration = int(metrics["trainer/iter"])
        if iteration <= self.held_through:
            return
        if iteration <= self._sent_through:  # W&B would drop it: a caller out of order
            raise RuntimeError(f"W&B row of iteration {iteration} logged after the rows up "
                               f"to {self._sent_through} were sent")
        self._rows.setdefault(iteration, {}).update(metrics)

    @rank_zero_only
    def flush_rows(self) -> None:
        for iteration in sorted(self._rows):
            self.experiment.log(self._rows[iteration], step=iteration, commit=True)
            self._sent_through = iteration
        self._rows = {}


def wandb_logger(cfg: DictConfig, run_dir: Path,
                 settings_changed: dict | None = None) -> IterationLogger | None:
    """The run's W&B logger (None with wandb.mode=disabled); `settings_changed`: the
    command line's settings of the run (default: this Hydra job's)."""
    settings = cfg.wandb
    if settings.mode == "disabled":
        return None
    # W&B's own name for offline, which its offline mode also exports to WANDB_MODE
    mode = "offline" if settings.mode == "dryrun" else settings.mode
    if mode not in ("offline", "online"):
        raise GansweepError(f"wandb.mode={settings.mode!r}: use offline, online or disabled")
    logger = IterationLogger(
        project=settings.project, entity=settings.entity, save_dir=str(run_dir),
        offline=mode == "offline", id=run_id(run_dir), resume="allow",
        name=run_dir.name, group=wandb_group(settings.group or sweep_group(run_dir)),
        job_type=cfg.norm.name, tags=[cfg.arch.name, cfg.dataset.name, cfg.norm.name],
        config={**flat_config(cfg), "settings": command_line_settings()
                if settings_changed is None else settings_changed},
        # one process may hold several runs at once (packed seeds, gansweep/training/packed.py)
        reinit="create_new",
    )
    # Lightning passes `anonymous=None` to wandb.init, and W&B warns on every run that the
    # setting (any value) has no effect; not passing it changes nothing else. Lightning has
    # no public way to leave an argument out (its private `_wandb_init` holds them);
    # tests/test_entrypoint.py pins it: the warning must not reach the console.
    logger._wandb_init.pop("anonymous", None)
    run = logger.experiment
    # Lightning plots everything against trainer/global_step (2 per GAN iteration); ours
    # is the GAN iteration. Later definitions of a glob replace earlier ones.
    run.define_metric("trainer/iter")
    run.define_metric("*", step_metric="trainer/iter", step_sync=True)
    run.define_metric("recon/running", step_metric="trainer/iter", summary="min")
    if rank_zero_only.rank == 0:
        # online, W&B's server says where the run stands; offline, the earlier pieces do
        logger.held_through = max(run.starting_step - 1,
                                  held_through(run_dir, run.id, Path(run.dir).parent))
    return logger


def held(trainer) -> int:
    """The last iteration the W&B run of `trainer`'s run holds from its earlier pieces (0:
    none, or no W&B): rows up to it need not be replayed."""
    return min((logger.held_through for logger in trainer.loggers
                if isinstance(logger, IterationLogger)), default=0)


def log_row(trainer, iteration: int, metrics: dict) -> None:
    """`metrics` of GAN iteration `iteration` to the loggers of `trainer`'s run."""
    for logger in trainer.loggers:
        logger.log_metrics({**metrics, "trainer/iter": iteration})


def log_image(trainer, iteration: int, key: str, path: Path) -> None:
    """An image file to the W&B row of GAN iteration `iteration`."""
    if any(isinstance(logger, IterationLogger) for logger in trainer.loggers):
        import wandb  # a slow import, which runs with wandb.mode=disabled never need

        log_row(trainer, iteration, {key: wandb.Image(str(path))})


def flush_rows(trainer) -> None:
    """Sends the rows logged so far (every value of their iterations is in)."""
    for logger in trainer.loggers:
        if isinstance(logger, IterationLogger):
            logger.flush_rows()


def log_summary(logger: IterationLogger, summary: dict, run_dir: Path) -> None:
    """`summary.json`'s content, and the final test's image, to the W&B run's summary: the
    final test comes after the last row, at the best checkpoint's iteration."""
    values = dict(summary)
    image = Path(run_dir) / "final_recon.png"
    if summary.get("final_iter") is not None and image.exists():
        import wandb

        values["final_recon"] = wandb.Image(str(image))
    logger.experiment.summary.update(values)
