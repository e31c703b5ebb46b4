"""Reads W&B's offline run files (`run-<id>.wandb`) back, for tests.

The file is a LevelDB-style log (32 KiB blocks, 7-byte record headers: crc32c, length,
type) of protobuf `Record`s, after a 7-byte file header ':W&B', magic, version. wandb >= 0.2x
no longer ships a Python reader, so this is the format read directly.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path):
    data = Path(path).read_bytes()
    ident, _magic, _version = struct.unpack("<4sHB", data[:HEADER])
    assert ident == b":W&B", f"{path} is not a W&B run file"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:  # block trailer: zero padding
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0 and length == 0:
            break  # preallocated tail
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == FULL:
            pending = chunk
        elif kind == FIRST:
            pending = chunk
            continue
        elif kind == MIDDLE:
            pending += chunk
            continue
        elif kind == LAST:
            pending += chunk
        record = pb.Record()
        record.ParseFromString(pending)
        yield record


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
    """The parts of one finished offline run a test checks: run fields, config, history,
    summary."""

    def __init__(self, path: Path):
        self.history, self.summary, self.config, self.run = [], {}, {}, None
        self.metrics = []
        for record in finished_records(path):
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
                    self.summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
            elif kind == "metric":
                self.metrics.append(record.metric)

    def _update_config(self, config):
        for item in config.update:
            value = json.loads(item.value_json)
            self.config[item.key] = value.get("value", value) if isinstance(value, dict) else value

    def series(self, key: str, step: str = "trainer/iter") -> list[tuple]:
        return [(row[step], row[key]) for row in self.history if key in row and step in row]


def offline_runs(root: Path) -> list[OfflineRun]:
    return [OfflineRun(p) for p in sorted(Path(root).rglob("offline-run-*/run-*.wandb"))]
