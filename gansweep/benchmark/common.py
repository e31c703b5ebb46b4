"""What the benchmarks share: timing, the device's name, the training step's speed."""

from __future__ import annotations

import time

import lightning as L
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

import gansweep.rundir.names  # noqa: F401  (registers the resolvers the root config uses)
from gansweep.method.reconstruction import PAPER_BATCH
from gansweep.training.gan import GAN


def root_config(*overrides: str) -> DictConfig:
    """gansweep's root config with `overrides`, composed as a run composes it."""
    with initialize_config_module("gansweep.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


def device_name() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() \
        else f"cpu x{torch.get_num_threads()}"


def synchronize() -> None:
    """Wait for the GPU's queued work (timings end here); nothing on a CPU."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeat: int = 1) -> float:
    """Best wall time of `repeat` calls (after one warm-up call), in seconds."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def training_iteration_time(gan: GAN, device, iterations: int = 5) -> float:
    """Seconds per GAN iteration at batch 32, through the module's own training_step."""
    class Bench(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 2:  # after warm-up
                self.start = time.perf_counter()

        def on_train_end(self, trainer, pl_module):
            self.seconds = (time.perf_counter() - self.start) / (iterations - 2)

    bench = Bench()
    images = torch.rand(PAPER_BATCH * iterations, 3, gan.hparams.image_size,
                        gan.hparams.image_size)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images),
                                         batch_size=PAPER_BATCH)
    trainer = L.Trainer(accelerator="auto", devices=1, max_epochs=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[bench])
    trainer.fit(gan, loader)
    return bench.seconds


