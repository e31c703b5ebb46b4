"""The pieces of a resumed W&B run, read back from their files: how far W&B already holds it.

Each process of a run (the first, and each resume after a kill or a preemption) is one W&B
"piece": a folder of its own (`offline-run-*`, or `run-*` online) with the run's id and a
transaction log `run-<id>.wandb`. A resumed process logs only the iterations after the last
one an earlier piece holds (`gansweep.training.wandb_logger.IterationLogger`), so the pieces,
uploaded one after another, are one history with each iteration once.

The transaction log is LevelDB's log format: after a 7-byte file header (`:W&B`, a magic
number, a version), 32 KiB blocks of chunks, each with a 7-byte header (CRC-32 of the chunk's
type and data, length, type), holding protobuf `Record`s (`wandb.proto`). W&B's Python
package has no reader of it since its Go core took the writing over (wandb 0.21 removed the
Python one), so it is read here. A piece cut short by a kill ends where W&B's service stopped
writing, in whole blocks; a chunk whose CRC does not match ends the reading.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

BLOCK = 32768
HEADER = 7  # the file's header, and each chunk's
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path, start: int = HEADER) -> Iterator:
    """The `Record`s of a W&B transaction log, from `start` (a block's first byte, or the
    first record): chunks of a record that began before `start` are skipped."""
    from wandb.proto import wandb_internal_pb2 as pb  # a slow import, for resumed runs only

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        return
    pos, pending = max(start, HEADER), None
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # a block's tail too short for a header: padding
            pos += BLOCK - pos % BLOCK
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        chunk = data[pos + HEADER:pos + HEADER + length]
        if kind not in (FULL, FIRST, MIDDLE, LAST) or len(chunk) < length or \
                zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != crc:
            return  # never written (zeros), or torn by a kill
        pos += HEADER + length
        if kind in (FULL, FIRST):
            pending = chunk
        elif pending is not None:  # a continuation of a record begun after `start`
            pending += chunk
        if kind in (FULL, LAST) and pending is not None:
            record = pb.Record()
            record.ParseFromString(pending)
            pending = None
            yield record


def last_step(path: Path) -> int | None:
    """The highest history step in one piece's log (None: no history row). Read from the
    end, a doubling number of blocks at a time: a long run's log is hundreds of MB."""
    size = Path(path).stat().st_size
    blocks = 1
    while True:
        start = max(HEADER, (size // BLOCK + 1 - blocks) * BLOCK)
        steps = [r.history.step.num for r in records(path, start)
                 if r.WhichOneof("record_type") == "history"]
        if steps:
            return max(steps)
        if start == HEADER:
            return None
        blocks *= 2


def held_through(run_dir: Path, run_id: str, own_piece: Path) -> int:
    """The last W&B step (= GAN iteration) the run's pieces in `run_dir` other than
    `own_piece` (this process's folder) hold; 0 for none."""
    steps = [last_step(log) for log in Path(run_dir).glob(f"wandb/*/run-{run_id}.wandb")
             if log.parent.resolve() != own_piece.resolve()]
    return max((s for s in steps if s is not None), default=0)
