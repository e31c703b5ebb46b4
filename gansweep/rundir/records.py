"""A run's records: what the run is, how it ended, and its running test's history.

Training, `__main__`, the restarts and the evaluator write them and the report reads them,
all through this module, so that each file is written and read one way:

| file | what |
|---|---|
| `config.yaml` | the run's resolved config (written by training) |
| `summary.json` | a run that ended as a result (finished or diverged), with its final test |
| `failed.json` | a sweep's run that raised, for the table (removed when the run trains again) |
| `recon.csv` | the running test, one row per evaluation (`durable.IterationCsv`) |
| `train.csv` | the losses, one row per iteration (`durable.IterationCsv`) |
| `quality.csv` | the sample-quality test, one row per evaluation (`durable.IterationCsv`) |
| `eval/<name>.json` | a re-evaluation of one checkpoint (`gansweep.evaluate`) |

Every JSON record carries the run's identity: norm, arch, data set and seed. A record or a
checkpoint that cannot be read back (torn by hand, overwritten by something else) raises
`DamagedFile`, whose message names the file, what moving it away does, and any intact
older copy.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from gansweep.errors import damaged, first_line
from gansweep.method.losses import DEFAULT_LOSS, NO_PENALTY
from gansweep.rundir.durable import IterationCsv, write_json

SUMMARY, FAILED, CONFIG = "summary.json", "failed.json", "config.yaml"
RESULTS = ("finished", "diverged")  # statuses whose summary holds the run's results
TRAIN_CSV, RECON_CSV, QUALITY_CSV = "train.csv", "recon.csv", "quality.csv"
ARCHIVE = "restarts"  # earlier attempts of a run that restarted (gansweep.rundir.restarts)
RECON_COLUMNS = ["recon_mse"]


@dataclass(frozen=True)
class Result:
    """A result of a run: a key of its `summary.json` that the report shows as a column (a
    mean ± std over seeds), reads from W&B's summary, sets beside the paper's row and shows
    in the W&B Report's runs table. Adding one here is all a new column takes."""

    key: str
    title: str  # the report's column heading
    form: str  # its cells' format
    # None: not compared; else its place among the comparisons (the paper's headline first),
    # and it may be the value an optimisation sweep minimises (`objective`)
    compared: int | None = None
    # how two variants' values compare: "relative" (the ratio of geometric means: positive
    # values that a change scales) or "absolute" (the difference of means: values that may
    # be 0 or below, as KID's unbiased estimate)
    difference: str = "relative"
    # a sample-quality result: its value is in the units of the run's feature network
    # (`quality_features`), so a column holds one network's values and its title names it
    in_features: bool = False
    features: str | None = None  # the network of this column (`result_columns`)

    def of(self, run: dict):
        """The run's value of this result; None where it has none, or (a sample-quality
        result) has it in another network's features."""
        if self.features is not None and run.get("quality_features") != self.features:
            return None
        return run.get(self.key)


RESULT_COLUMNS = (
    Result("best_iter", "best iteration", "{:,.0f}"),
    Result("running_loss", "running loss", "{:.6f}", compared=2),
    Result("final_loss", "final loss", "{:.6f}", compared=1),
    # the final test's sample quality (gansweep/quality): FID, and KID, which is unbiased and
    # so may come out at or below 0 for close distributions
    Result("final_fid", "final FID", "{:.2f}", compared=3, in_features=True),
    Result("final_kid", "final KID", "{:.4f}", compared=4, difference="absolute",
           in_features=True),
)


def result_columns(runs: list[dict]) -> list[Result]:
    """The results of `runs` as columns: a sample-quality result once per feature network
    the runs measured in (`final FID[digits-classifier]`), none where no run measured it."""
    networks = sorted({r["quality_features"] for r in runs if r.get("quality_features")})
    columns = []
    for result in RESULT_COLUMNS:
        if not result.in_features:
            columns.append(result)
            continue
        columns += [replace(result, title=f"{result.title}[{network}]", features=network)
                    for network in networks]
    return columns


def compared_results(runs: list[dict] | None = None) -> list[Result]:
    """The results the report compares variants on, in the comparisons' order (all of
    them, sample quality unexpanded, without `runs`)."""
    columns = result_columns(runs) if runs is not None else RESULT_COLUMNS
    return sorted((r for r in columns if r.compared), key=lambda r: r.compared)


def identity(cfg: DictConfig) -> dict:
    """What every record of a run says it is: the compared keys, its loss and penalty (runs
    older than those axes had the defaults), and its seed."""
    return {"norm": cfg.norm.name, "arch": cfg.arch.name, "dataset": cfg.dataset.name,
            "loss": OmegaConf.select(cfg, "loss.name", default=DEFAULT_LOSS),
            "penalty": OmegaConf.select(cfg, "penalty.name", default=NO_PENALTY),
            "seed": cfg.seed}


def read_config(run_dir: Path) -> DictConfig:
    """The run's resolved config (`config.yaml`)."""
    path = Path(run_dir) / CONFIG
    try:
        return OmegaConf.load(path)
    except OSError:
        raise
    except Exception as error:  # noqa: BLE001  yaml's and omegaconf's errors for a bad file
        raise damaged(path, first_line(error)) from None


def _read_json(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        content = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise damaged(path, f"not JSON: {first_line(error)}") from None
    if not isinstance(content, dict):
        raise damaged(path, "not a JSON object")
    return content


def _load(path: Path, mmap: bool) -> dict:
    checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
    if not isinstance(checkpoint, dict) or "gansweep" not in checkpoint:
        raise ValueError("no gansweep training state in it")
    return checkpoint


def read_checkpoint(path: Path, mmap: bool = True) -> dict:
    """A gansweep checkpoint (its tensors memory-mapped with `mmap`, read on use); a torn or
    foreign file raises `DamagedFile`, naming an intact copy to go on from if there is one."""
    path = Path(path)
    try:
        return _load(path, mmap)
    except Exception as error:  # noqa: BLE001  torch raises many kinds for a bad file
        cause = first_line(error)
    # an older good copy: the write a kill cut short (its .tmp), or for last.ckpt, best.ckpt
    others = [path.with_name(path.name + ".tmp")]
    if path.name == "last.ckpt":
        others.append(path.with_name("best.ckpt"))
    intact = ""
    for other in others:
        try:
            iteration = _load(other, mmap=True)["gansweep"]["iteration"]
        except Exception:  # noqa: BLE001  absent or damaged too
            continue
        intact = f"; {other} is intact (iteration {iteration}): copy it to {path} to go on " \
                 f"from there"
        break
    raise damaged(path, cause, intact)


def read_summary(run_dir: Path) -> dict | None:
    return _read_json(Path(run_dir) / SUMMARY)


def read_result(run_dir: Path) -> dict | None:
    """The run's summary if it ended as a result (finished or diverged), else None."""
    summary = read_summary(run_dir)
    return summary if summary and summary.get("status") in RESULTS else None


def write_summary(run_dir: Path, summary: dict) -> None:
    write_json(Path(run_dir) / SUMMARY, summary)


def read_failure(run_dir: Path) -> dict | None:
    return _read_json(Path(run_dir) / FAILED)


def write_failure(run_dir: Path, cfg: DictConfig, error: Exception) -> None:
    """`failed.json`: a sweep's run that raised, for the table (removed when it trains)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / FAILED, {"status": "failed",
                                  "error": f"{type(error).__name__}: {error}", **identity(cfg)})


def write_evaluation(run_dir: Path, name: str, result: dict) -> Path:
    path = Path(run_dir) / "eval" / f"{name}.json"
    path.parent.mkdir(exist_ok=True)
    write_json(path, result)
    return path


def clear_failure(run_dir: Path) -> None:
    (Path(run_dir) / FAILED).unlink(missing_ok=True)


def recon_history(run_dir: Path) -> IterationCsv:
    return IterationCsv(Path(run_dir) / RECON_CSV, RECON_COLUMNS)


def recon_series(run_dir: Path) -> list[tuple[int, float]]:
    """(iteration, running test error) rows of `recon.csv`; a row torn by a kill is left out,
    by the same rule the writer uses when it resumes."""
    return [(int(r["iter"]), float(r["recon_mse"])) for r in recon_history(run_dir).read()]


def quality_series(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """{column: (iteration, value) rows} of `quality.csv` (its columns name the metric and
    the features, `fid[digits-classifier]`); empty without the file. A torn row is left out,
    as in `recon_series`."""
    path = Path(run_dir) / QUALITY_CSV
    try:
        with open(path, newline="") as f:
            header = next(csv.reader(f), None)
    except FileNotFoundError:
        return {}
    if not header or header[0] != "iter":
        raise damaged(path, "its first column is not iter")
    rows = IterationCsv(path, header[1:]).read()
    return {c: [(int(r["iter"]), float(r[c])) for r in rows] for c in header[1:]}
