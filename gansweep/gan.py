"""The GAN as a LightningModule: the paper's training loop, any architecture x norm.

Per GAN iteration (`shared/paper.md`, "Training"): one D step on a real batch and a fake
batch (separate forward passes, so BN statistics are per kind of batch), then one G step with
fresh codes; non-saturating loss with BCE on logits; RMSProp for both networks.

`self.iteration` counts GAN iterations. Lightning's `global_step` counts optimizer steps,
two per iteration under manual optimisation, so nothing here relies on it.

Under DDP (W processes) each rank trains on its slice of the global batch (see
`IterationBatchSampler`) and of the iteration's codes, DDP averages the gradients, and the
logged losses are means over all ranks: the same numbers as one process with the whole batch,
except that BN normalises each rank's slice by its own statistics (`trainer.sync_batchnorm`).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf


def _plain(cfg: Any) -> Any:
    """DictConfig -> plain containers, so hyperparameters pickle and print cleanly."""
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


class GAN(L.LightningModule):
    def __init__(self, arch: dict, norm: str, image_size: int, channels: int,
                 optimizer: dict, seed: int = 0, n_samples: int = 64):
        super().__init__()
        arch, optimizer = _plain(arch), _plain(optimizer)
        # For checkpoints (load_from_checkpoint rebuilds G and D from them); the loggers get
        # the whole flattened run config instead (gansweep/tracking.py).
        self.save_hyperparameters(
            dict(arch=arch, norm=norm, image_size=image_size, channels=channels,
                 optimizer=optimizer, seed=seed, n_samples=n_samples), logger=False
        )
        self.automatic_optimization = False
        shape = dict(norm=norm, image_size=image_size, channels=channels)
        self.generator = instantiate(arch["generator"], **shape)
        self.discriminator = instantiate(arch["discriminator"], **shape)
        self.iteration = 0
        self.diverged_at: int | None = None  # the iteration whose loss or test was not finite
        # Codes come from a generator of our own, saved in checkpoints, so a resumed run
        # draws exactly the codes an uninterrupted one would.
        self.code_rng = torch.Generator().manual_seed(seed)
        fixed = torch.randn(n_samples, self.generator.code_dim,
                            generator=torch.Generator().manual_seed(seed + 10_000))
        self.register_buffer("fixed_codes", fixed, persistent=False)

    def _ranks(self) -> tuple[int, int]:
        trainer = self._trainer
        return (trainer.global_rank, trainer.world_size) if trainer else (0, 1)

    def sample_codes(self, n: int) -> torch.Tensor:
        """This rank's n codes: every rank draws the whole iteration's codes (its generator
        stays in step with the others') and keeps its own slice."""
        rank, world = self._ranks()
        z = torch.randn(n * world, self.generator.code_dim, generator=self.code_rng)
        return z[rank * n : (rank + 1) * n].to(self.device)

    def _mean_over_ranks(self, values: torch.Tensor) -> torch.Tensor:
        return self.trainer.strategy.reduce(values.detach(), reduce_op="mean")

    def configure_optimizers(self):
        make = instantiate(self.hparams.optimizer)  # a partial of the optimizer class
        return make(self.discriminator.parameters()), make(self.generator.parameters())

    def training_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        real = batch[0]  # (B, C, H, W) in [0, 1]
        n = real.shape[0]
        opt_d, opt_g = self.optimizers()

        self.toggle_optimizer(opt_d)
        fake = self.generator(self.sample_codes(n)).detach()
        d_real = self.discriminator(real)
        d_fake = self.discriminator(fake)
        d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        d_stats = self._mean_over_ranks(torch.stack(
            [d_loss, torch.sigmoid(d_real).mean(), torch.sigmoid(d_fake).mean()]))
        self._step_if_finite(opt_d, d_loss, d_stats[0])
        self.untoggle_optimizer(opt_d)

        self.toggle_optimizer(opt_g)  # D's parameters stop requiring grad meanwhile
        d_gen = self.discriminator(self.generator(self.sample_codes(n)))
        g_loss = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
        g_mean = self._mean_over_ranks(g_loss)
        self._step_if_finite(opt_g, g_loss, g_mean)
        self.untoggle_optimizer(opt_g)

        self.iteration += 1
        if self.diverged_at is not None:
            self.trainer.should_stop = True  # the run ends here, as a result
        losses = {"d_loss": d_stats[0], "g_loss": g_mean,
                  "d_real": d_stats[1], "d_fake": d_stats[2]}
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=True)
        self.log("trainer/iter", float(self.iteration))
        return losses

    def _step_if_finite(self, optimizer, loss: torch.Tensor, global_loss: torch.Tensor) -> None:
        """One optimiser step on `loss`, unless `global_loss` (its mean over all ranks, so
        that every rank decides alike) is NaN/inf: then the weights stay those of the last
        good iteration and the run is marked diverged (a result, not a crash).
        A NaN in G's output shows up here too, through D's losses."""
        if self.diverged_at is not None or not torch.isfinite(global_loss):
            self.diverged_at = self.diverged_at or self.iteration + 1
            return
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        optimizer.step()

    @torch.no_grad()
    def samples(self, codes: torch.Tensor | None = None) -> torch.Tensor:
        """G(codes) in eval mode (default: the fixed codes of the sample grids)."""
        was_training = self.generator.training
        self.generator.eval()
        try:
            return self.generator(self.fixed_codes if codes is None else codes.to(self.device))
        finally:
            self.generator.train(was_training)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["gansweep"] = {"iteration": self.iteration,
                                  "code_rng": self.code_rng.get_state(),
                                  "diverged_at": self.diverged_at}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["gansweep"]
        self.iteration = state["iteration"]
        self.code_rng.set_state(state["code_rng"])
        self.diverged_at = state.get("diverged_at")
