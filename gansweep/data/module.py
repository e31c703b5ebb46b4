"""The DataModule: one data set, its fixed held-out split, deterministic training batches."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from gansweep.data import decoded
from gansweep.data.sampler import IterationBatchSampler, PackedBatchSampler
from gansweep.data.split import Split, load_or_make_split


def first_images(dataset: Dataset, indices: list[int]) -> torch.Tensor:
    """Stack dataset[i][0] for i in indices -> (N, C, H, W)."""
    return torch.stack([dataset[i][0] for i in indices])


class ResumableLoader(DataLoader):
    """A DataLoader in Lightning's resumable protocol (`state_dict` / `load_state_dict`).

    Its position needs no state of its own: the batch sampler starts at the module's restored
    iteration (`IterationBatchSampler`), so a resumed run continues with exactly the batches
    an uninterrupted one would see. Saying so keeps Lightning from warning, at every resume,
    that results may be unreliable.
    """

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class GANData(L.LightningDataModule):
    """Serves `dataset` (items are (image, ...) tuples) split once by `split_path`.

    Training batches are drawn for GAN iterations [current iteration, iters), so a resumed run
    continues the exact batch sequence (see `IterationBatchSampler`). With `cache` the images
    come decoded from the shared cache in `cache_dir`, with `in_memory` decoded by this run
    (`gansweep.data.decoded`); either way the batches are the same.
    """

    def __init__(self, dataset: Dataset, name: str, holdout: int, split_seed: int,
                 split_path: str | Path, batch_size: int, iters: int, seed: int,
                 num_workers: int = 0, pin_memory: bool | None = None, in_memory: bool = False,
                 cache: bool = False, cache_dir: str | Path = "cache",
                 seeds: list[int] | None = None):
        super().__init__()
        if cache:
            dataset = decoded.cached(dataset, cache_dir, num_workers)
        elif in_memory:
            dataset = decoded.in_memory(dataset, num_workers)
        self.dataset, self.name = dataset, name
        self.batch_size, self.iters, self.seed = batch_size, iters, seed
        self.seeds = seeds  # packed seeds (gansweep/training/packed.py): each gets its own batches
        # Decoded images are served by this process: a gather and a division per batch,
        # which worker processes would only slow down by copying every batch between
        # processes (docs/data.md, has the figures).
        # The workers decode: the raw files, or the cache's first build.
        decoded_already = cache or in_memory
        self.num_workers = 0 if decoded_already else num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.split_path = Path(split_path)
        fingerprint = getattr(dataset, "fingerprint", f"{name}-{len(dataset)}")
        self.split: Split = load_or_make_split(
            self.split_path, name, fingerprint, len(dataset), split_seed, holdout
        )

    def _current_iteration(self) -> int:
        module = self.trainer.lightning_module if self.trainer is not None else None
        return getattr(module, "iteration", 0)

    def train_dataloader(self) -> DataLoader:
        train_set = Subset(self.dataset, self.split.train)

        def sampler_of(seed: int) -> IterationBatchSampler:
            return IterationBatchSampler(
                len(train_set), self.batch_size, self.iters, seed,
                start=self._current_iteration,
                rank=self.trainer.global_rank if self.trainer else 0,
                world_size=self.trainer.world_size if self.trainer else 1,
            )

        sampler = sampler_of(self.seed) if self.seeds is None else \
            PackedBatchSampler([sampler_of(seed) for seed in self.seeds])
        return ResumableLoader(train_set, batch_sampler=sampler, num_workers=self.num_workers,
                          pin_memory=self.pin_memory)

    def heldout_images(self, n: int) -> torch.Tensor:
        """The first n held-out images (n <= holdout): the paper's running/final test sets."""
        if n > self.split.holdout:
            raise ValueError(
                f"asked for {n} held-out images but dataset.holdout is {self.split.holdout}"
            )
        return first_images(self.dataset, self.split.heldout[:n])
