"""The held-out split: a seeded permutation of a data set's indices, made once and reused.

As docs/method.md, "The method", The metric, has it: the first `recon.n_images` of the permutation
are the running test set, the first `holdout` the final test set, the rest is for training.
The authors' split was unseeded; ours is seeded, saved, and tied to a fingerprint of the
data set so that a changed data set is detected instead of silently re-split.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from gansweep.errors import SPLIT_REMADE, GansweepError, damaged, first_line, naming


@dataclass(frozen=True)
class Split:
    dataset: str
    fingerprint: str
    seed: int
    holdout: int
    permutation: list[int]

    @property
    def heldout(self) -> list[int]:
        return self.permutation[: self.holdout]

    @property
    def train(self) -> list[int]:
        return self.permutation[self.holdout :]


class SplitMismatch(GansweepError):
    """The saved split was made for other data or settings than the ones loaded now."""


def make_split(dataset: str, fingerprint: str, size: int, seed: int, holdout: int) -> Split:
    if not 0 < holdout < size:
        raise ValueError(
            f"dataset.holdout={holdout} must be between 1 and the data set's size - 1 ({size - 1})"
        )
    perm = torch.randperm(size, generator=torch.Generator().manual_seed(seed)).tolist()
    return Split(dataset, fingerprint, seed, holdout, perm)


def load_or_make_split(path: Path, dataset: str, fingerprint: str, size: int, seed: int,
                       holdout: int) -> Split:
    """The split saved at `path`, made and saved first if there is none."""
    path = Path(path)
    if not path.exists():
        split = make_split(dataset, fingerprint, size, seed, holdout)
        save_split(split, path)
        return split
    split = read_split(path)
    wanted = dict(dataset=dataset, fingerprint=fingerprint, seed=seed, holdout=holdout)
    found = {k: getattr(split, k) for k in wanted}
    if found != wanted or len(split.permutation) != size:
        raise SplitMismatch(
            f"the split saved at {path} was made for {found} ({len(split.permutation)} images), "
            f"but the data now loaded is {wanted} ({size} images). If the data set really "
            f"changed, move that file away to make a new split (results made with the old one "
            f"are then no longer comparable); otherwise point the data root back at the "
            f"original data."
        )
    return split


def read_split(path: Path) -> Split:
    try:
        return Split(**json.loads(path.read_text()))
    except (ValueError, TypeError, UnicodeDecodeError) as error:
        raise damaged(path, first_line(error), without=SPLIT_REMADE) from None


def save_split(split: Split, path: Path) -> None:
    """Write atomically: a run killed mid-write must not leave half a split behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with naming(tmp):
        tmp.write_text(json.dumps(asdict(split)))
    os.replace(tmp, path)
