"""Training batches as a pure function of the GAN iteration.

Iteration i uses batch i mod P of pass i div P over the training set (P = batches per pass,
last partial batch dropped), each pass a permutation seeded by (seed, pass). A run resumed at
iteration k therefore sees exactly the batches an uninterrupted run sees from k on, with no
sampler state to checkpoint.

Under DDP, `batch_size` is the global batch: rank r of W takes the r-th of W equal slices of
iteration i's batch, so together the ranks see exactly the single-process batch.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch.utils.data import Sampler

from gansweep.errors import GansweepError


class IterationBatchSampler(Sampler[list[int]]):
    """Yields the index batches of iterations [start(), total).

    `len()` is `total`, not the number left: Lightning restores its batch counter on resume
    and counts on from there, so the epoch ends exactly at `total`.
    """

    def __init__(self, size: int, batch_size: int, total: int, seed: int,
                 start: Callable[[], int] = lambda: 0, rank: int = 0, world_size: int = 1):
        if batch_size > size:
            raise GansweepError(
                f"train.batch_size={batch_size} is larger than the training set ({size} images "
                f"after the held-out ones): lower train.batch_size, or add images (a smaller "
                f"dataset.holdout makes a new split, not comparable with the old one)")
        if batch_size % world_size:
            raise GansweepError(f"train.batch_size={batch_size} is the global batch and must be "
                             f"divisible by the number of DDP processes ({world_size})")
        self.size, self.batch_size, self.total, self.seed = size, batch_size, total, seed
        self.start = start
        self.per_pass = size // batch_size
        per_rank = batch_size // world_size
        self.rank_slice = slice(rank * per_rank, (rank + 1) * per_rank)

    def __len__(self) -> int:
        return self.total

    def batch(self, iteration: int, perm_cache: dict | None = None) -> list[int]:
        epoch, b = divmod(iteration, self.per_pass)
        cache = perm_cache if perm_cache is not None else {}
        if epoch not in cache:
            cache.clear()
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            cache[epoch] = torch.randperm(self.size, generator=g)
        return cache[epoch][b * self.batch_size : (b + 1) * self.batch_size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        cache: dict = {}
        for iteration in range(self.start(), self.total):
            yield self.batch(iteration, cache)[self.rank_slice]


class PackedBatchSampler(Sampler[list[int]]):
    """The batches of several seeds' samplers for one iteration, one after another, as one
    batch: K packed copies each get the batch their seed's run would
    (gansweep/training/packed.py)."""

    def __init__(self, samplers: list[IterationBatchSampler]):
        self.samplers = samplers

    def __len__(self) -> int:
        return len(self.samplers[0])

    def __iter__(self) -> Iterator[list[int]]:
        for batches in zip(*self.samplers):
            yield [index for batch in batches for index in batch]
