"""A run's records: what the run is, how it ended, and its running test's history.

Training, `__main__`, the restarts and the evaluator write them and the report reads them,
all through this module, so that each file is written and read one way:

| file | what |
|---|---|
| `summary.json` | a run that ended as a result (finished or diverged), with its final test |
| `failed.json` | a sweep's run that raised, for the table (removed when the run trains again) |
| `recon.csv` | the running test, one row per evaluation (`history.IterationCsv`) |
| `train.csv` | the losses, one row per iteration (`history.IterationCsv`) |
| `eval/<name>.json` | a re-evaluation of one checkpoint (`gansweep.evaluate`) |

Every JSON record carries the run's identity: norm, arch, data set and seed.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from gansweep.history import IterationCsv, write_json

SUMMARY, FAILED = "summary.json", "failed.json"
RESULTS = ("finished", "diverged")  # statuses whose summary holds the run's results
TRAIN_CSV, RECON_CSV = "train.csv", "recon.csv"
RECON_COLUMNS = ["recon_mse"]


def identity(cfg: DictConfig) -> dict:
    """What every record of a run says it is: the compared keys, and its seed."""
    return {"norm": cfg.norm.name, "arch": cfg.arch.name, "dataset": cfg.dataset.name,
            "seed": cfg.seed}


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


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
