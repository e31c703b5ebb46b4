"""Reads W&B's offline run files (`run-<id>.wandb`) back, for tests: their records through
gansweep's own reader (gansweep/training/wandb_pieces.py, which says why there is one), as the
parts a test checks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from gansweep.training.wandb_pieces import records


def finished_records(path: Path, timeout: float = 30.0) -> list:
    """The records of a run that called `finish()`, once its last one (exit) is on disk.

    W&B's service process writes the file in the background and can still be writing it
    when `run.finish()` has returned: read too early, the file held only its header (seen
    twice in some 30 runs of one test). Waits at most `timeout` seconds, then returns what
    is there."""
    deadline = time.monotonic() + timeout
    while True:
        found = list(records(path))
        if any(r.WhichOneof("record_type") == "exit" for r in found) \
                or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


class OfflineRun:
    """The parts of one offline run (or one piece of a resumed run) a test checks: run fields,
    config, history, summary. `finished`: wait for the run's last record (a piece cut short by
    a kill has none)."""

    def __init__(self, path: Path, finished: bool = True):
        self.history, self.summary, self.config, self.run = [], {}, {}, None
        self.metrics, self.path = [], Path(path)
        for record in finished_records(path) if finished else records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                self.run = record.run
                self._update_config(record.run.config)
            elif kind == "config":
                self._update_config(record.config)
            elif kind == "history":
                self.history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                     for i in record.history.item})
            elif kind == "summary":
                for item in record.summary.update:
                    key = item.key or "/".join(item.nested_key)
                    self.summary[key] = json.loads(item.value_json)
            elif kind == "metric":
                self.metrics.append(record.metric)

    def _update_config(self, config):
        for item in config.update:
            value = json.loads(item.value_json)
            self.config[item.key] = value.get("value", value) if isinstance(value, dict) else value

    def series(self, key: str, step: str = "trainer/iter") -> list[tuple]:
        return [(row[step], row[key]) for row in self.history if key in row and step in row]

    @property
    def started(self) -> tuple[str, int]:
        """When the piece started, from its folder's name (a piece cut short before its
        first record has no other): `offline-run-<date>_<time>-<id>`, and a `-<n>` W&B adds
        for pieces started within the same second."""
        _, _, stamp, rest = self.path.parent.name.split("-", 3)
        same_second = rest.rsplit("-", 1)[1] if rest.count("-") else "0"
        return stamp, int(same_second)


def offline_runs(root: Path, finished: bool = True) -> list[OfflineRun]:
    """Every offline run (or piece) below `root`, in the order they started."""
    runs = [OfflineRun(p, finished) for p in Path(root).rglob("offline-run-*/run-*.wandb")]
    return sorted(runs, key=lambda run: run.started)


def one_history(pieces: list[OfflineRun]) -> list[dict]:
    """The history rows of a run's pieces, one after another in the order they started: what
    `wandb sync` uploads as the run's history."""
    return [row for piece in pieces for row in piece.history]


def check_each_iteration_once(pieces: list[OfflineRun], iterations: int) -> list[dict]:
    """The pieces' rows are one per GAN iteration, 1 to `iterations`, in order, with W&B's
    step equal to the iteration; returns the rows."""
    rows = one_history(pieces)
    assert [row["_step"] for row in rows] == [row["trainer/iter"] for row in rows]
    assert [row["trainer/iter"] for row in rows] == list(range(1, iterations + 1))
    assert all("train/d_loss" in row for row in rows)
    return rows


def readme_sync_lists(pieces: list[OfflineRun], output_dir: Path, env: dict) -> bool:
    """The README's `wandb sync` line for the pieces' kind of run (single runs under
    `outputs/runs`, or a sweep's under `outputs/sweeps`), pasted where `outputs` is
    `output_dir`, would upload each piece (a dry run: no W&B server here)."""
    kind = "sweeps" if "sweeps" in pieces[0].path.relative_to(output_dir).parts else "runs"
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    (line,) = [line for line in readme.splitlines()
               if line.startswith(f"wandb sync outputs/{kind}/")]
    pasted = line.split("#")[0].replace("outputs/", f"{output_dir.name}/", 1) + " --dry-run"
    path = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # where pip put `wandb`
    said = subprocess.run(["bash", "-c", pasted], cwd=output_dir.parent, capture_output=True,
                          text=True, timeout=120,
                          env={**env, "HOME": str(output_dir.parent), "PATH": path})
    assert said.returncode == 0, said.stderr
    listed = said.stdout + said.stderr
    return all(str(piece.path.relative_to(output_dir.parent)) in listed for piece in pieces)
