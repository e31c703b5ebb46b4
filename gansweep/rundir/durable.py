"""Per-iteration CSV files (`train.csv`, `recon.csv`) that survive crashes and resumes, and
JSON records (`summary.json`, ...) that a kill never tears.

Rows are appended as they come and flushed at once (a few at a time for `train.csv`, whose
rows are read back from the device in batches). When a run resumes from a checkpoint taken at
iteration k, rows after k are dropped, so the file continues with no gap and no duplicate;
a torn last line from a kill is dropped too. Rewrites go through a temporary file and a
rename, so a kill at any moment leaves a readable file.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from gansweep.errors import damaged, first_line, naming


class IterationCsv:
    def __init__(self, path: str | Path, columns: list[str]):
        self.path, self.columns = Path(path), ["iter", *columns]
        self._file = None

    def open(self, resumed_at: int) -> list[dict[str, str]]:
        """Keep the rows up to `resumed_at` (0 for a fresh run) and append after them; the
        rows kept."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rows = [r for r in self.read() if int(r["iter"]) <= resumed_at]
        tmp = self.path.with_name(self.path.name + ".tmp")
        with naming(tmp), open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, self.columns)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)
        self._file = open(self.path, "a", newline="")
        self._writer = csv.writer(self._file)
        return rows

    def write(self, iteration: int, values: dict) -> None:
        with naming(self.path):
            self._writer.writerow([iteration,
                                   *(f"{float(values[c]):.8g}" for c in self.columns[1:])])
            self._file.flush()

    def write_rows(self, rows: list[tuple[int, list[float]]]) -> None:
        """(iteration, values in column order) rows at once, then flushed to the file."""
        with naming(self.path):
            self._writer.writerows([i, *(f"{v:.8g}" for v in values)] for i, values in rows)
            self._file.flush()

    def read(self) -> list[dict[str, str]]:
        """The well-formed rows of the file (none if it does not exist): a row torn by a
        kill (missing or empty fields, or extra ones) is left out."""
        if not self.path.exists():
            return []
        try:
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                if reader.fieldnames not in (None, self.columns):  # None: an empty file
                    raise ValueError(f"its columns are {','.join(reader.fieldnames)}, not "
                                     f"{','.join(self.columns)}")
                return [r for r in reader
                        if None not in r and all(v not in (None, "") for v in r.values())
                        and r["iter"].isdigit()]
        except (ValueError, UnicodeDecodeError, csv.Error) as error:
            raise damaged(self.path, first_line(error)) from None

    def close(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            with naming(self.path):
                file.close()  # flushes what is left: a full disk shows here too


FAILED = "failed.json"  # a sweep's run that raised (train.write_failure), for the table


def write_json(path: str | Path, content: dict) -> None:
    """Through a temporary file and a rename: a kill leaves the old file or the new one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with naming(tmp):
        tmp.write_text(json.dumps(content, indent=2))
    os.replace(tmp, path)
