"""The GAN as a LightningModule: the paper's training loop, any architecture x norm.

Per GAN iteration (docs/method.md, "The method", Training): one D step on a real batch and a fake
batch (separate forward passes, so BN statistics are per kind of batch), then one G step with
fresh codes; RMSProp for both networks. The loss is `loss` (`gansweep/method/losses.py`; the paper's
non-saturating BCE on logits by default), and D's adds `penalty`'s term (none by default).

`self.iteration` counts GAN iterations. Lightning's `global_step` counts optimizer steps,
two per iteration under manual optimisation, so nothing here relies on it.

Under DDP (W processes) each rank trains on its slice of the global batch (see
`IterationBatchSampler`) and of the iteration's codes, DDP averages the gradients, and the
logged losses are means over all ranks: the same numbers as one process with the whole batch,
except that BN normalises each rank's slice by its own statistics (`trainer.sync_batchnorm`).

Nothing is read back to the host inside an iteration: on a GPU every read (`.item()`, an
`if` on a tensor) waits for the queued kernels and leaves the device idle while Python
catches up. The losses stay on the device, and `read_losses()` brings all unread ones back
at once (every `train.log_every` iterations, and before anything is saved). A loss that is
not finite is found there and the run stops as diverged *at that iteration* (`diverged_at`,
`iteration`, the last `train.csv` row). Every callback that saves or evaluates reads first
and acts only while all losses are finite, so nothing from the faulty iteration on reaches a
file: the checkpoints keep the weights of before the fault.

With `train.compile` set, training calls G and D through `torch.compile` (`networks()`); the
modules, their parameters and the checkpoints stay those of the networks as built.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gansweep.method.layers import clamp_slopes_, slope_names
from gansweep.method.losses import DEFAULT_LOSS, LOSSES, Penalty

# What one training iteration reports (train.csv's columns, the loggers' train/* series)
LOSS_COLUMNS = ["d_loss", "g_loss", "d_real", "d_fake"]


def _plain(cfg: Any) -> Any:
    """DictConfig -> plain containers, so hyperparameters pickle and print cleanly."""
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


def networks_built(hyper_parameters: dict) -> dict:
    """What G and D are built from (`GAN`'s hyperparameters): their configs, the norm and
    the image shape (not arch.lr or other keys of the arch group, which do not change the
    networks)."""
    arch = hyper_parameters.get("arch") or {}
    return {"arch": {net: arch.get(net) for net in ("generator", "discriminator")},
            **{k: hyper_parameters.get(k) for k in ("norm", "image_size", "channels")}}


def differing_networks(saved: dict, wanted: dict) -> tuple[str, str] | None:
    """Where two GANs' hyperparameters build other networks: (the saved ones', the wanted
    ones') values of the keys that differ, e.g. ("norm='wn'", "norm='bn'"); None if the
    networks are the same."""
    saved, wanted = networks_built(saved), networks_built(wanted)
    differs = [k for k in wanted if saved[k] != wanted[k]]
    if not differs:
        return None
    return tuple(", ".join(f"{k}={values.get(k)!r}" for k in differs)
                 for values in (saved, wanted))


class GAN(L.LightningModule):
    def __init__(self, arch: dict, norm: str, image_size: int, channels: int,
                 optimizer: dict, seed: int = 0, n_samples: int = 64,
                 compile: str | None = None, loss: str = DEFAULT_LOSS,
                 penalty: dict | None = None):
        super().__init__()
        arch, optimizer, penalty = _plain(arch), _plain(optimizer), _plain(penalty) or {}
        # For checkpoints (load_from_checkpoint rebuilds G and D from them); the loggers get
        # the whole flattened run config instead (gansweep/training/wandb_logger.py).
        self.save_hyperparameters(
            dict(arch=arch, norm=norm, image_size=image_size, channels=channels,
                 optimizer=optimizer, seed=seed, n_samples=n_samples, compile=compile,
                 loss=loss, penalty=penalty),
            logger=False
        )
        self.loss = LOSSES[loss]()
        self.penalty = Penalty(**penalty)
        self.automatic_optimization = False
        shape = dict(norm=norm, image_size=image_size, channels=channels)
        self.generator = instantiate(arch["generator"], **shape)
        self.discriminator = instantiate(arch["discriminator"], **shape)
        self.iteration = 0
        self.diverged_at: int | None = None  # the iteration whose loss or test was not finite
        self._unread: list[torch.Tensor] = []  # one row per iteration, on the device
        self.read: list[tuple[int, list[float]]] = []  # read back, for the writers
        self.latest_losses: dict[str, float] = {}  # the last row read (the progress bar's)
        # Codes come from a generator of our own, saved in checkpoints, so a resumed run
        # draws exactly the codes an uninterrupted one would.
        self.code_rng = torch.Generator().manual_seed(seed)
        fixed = torch.randn(n_samples, self.generator.code_dim,
                            generator=torch.Generator().manual_seed(seed + 10_000))
        self.register_buffer("fixed_codes", fixed, persistent=False)
        self.compile_mode = compile
        self.compile_seconds: float | None = None  # the first compiled iteration's time
        self._compile_started: float | None = None
        self._compiled: dict[str, Any] = {}  # a plain dict: not submodules, so checkpoints
        # keep the keys of G and D as built, and compiled and eager runs resume each other

    def networks(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        """G and D as training calls them: compiled with `torch.compile` (train.compile
        names the mode) or as built. Samples and the reconstruction tests use them as built:
        other shapes and eval mode would only add compilations."""
        if self.compile_mode is None:
            return self.generator, self.discriminator
        if not self._compiled:  # lazy: torch.compile compiles at the first call anyway
            self._compile_started = time.perf_counter()
            # A sweep's jobs may share this process (Hydra's basic launcher). Dynamo keeps a
            # few graphs per function (`recompile_limit`), then runs it eagerly: after a few
            # jobs the rest would train eager under a compiled run's name. Start afresh, as
            # a job in a process of its own does; inductor's disk cache keeps recompiles short.
            torch.compiler.reset()
            self._compiled = {name: torch.compile(net, mode=self.compile_mode, dynamic=False)
                              for name, net in (("g", self.generator),
                                                ("d", self.discriminator))}
        return self._compiled["g"], self._compiled["d"]

    def attached_trainer(self) -> L.Trainer | None:
        """The Trainer fitting this module, or None when it is built alone (tests, the memory
        probe). Lightning has no public is-attached test: its `trainer` raises without one
        (tests/test_train.py pins that)."""
        try:
            return self.trainer
        except RuntimeError:
            return None

    def _ranks(self) -> tuple[int, int]:
        trainer = self.attached_trainer()
        return (trainer.global_rank, trainer.world_size) if trainer else (0, 1)

    def sample_codes(self, n: int) -> torch.Tensor:
        """This rank's n codes."""
        return self.draw(torch.randn, n, self.generator.code_dim)

    def uniform(self, n: int, *shape: int) -> torch.Tensor:
        """This rank's n draws of `shape` from U[0, 1) (a penalty's random points)."""
        return self.draw(torch.rand, n, *shape)

    def draw(self, sampler, n: int, *shape: int) -> torch.Tensor:
        """n draws of `shape` from the code generator, on the device: every rank draws the
        whole iteration's (its generator stays in step with the others') and keeps its own
        slice."""
        rank, world = self._ranks()
        z = sampler(n * world, *shape, generator=self.code_rng)
        return self.to_device(z[rank * n : (rank + 1) * n])

    def to_device(self, z: torch.Tensor) -> torch.Tensor:
        """Codes drawn on the CPU, queued to the module's device without waiting for it."""
        if self.device.type == "cuda":
            # a copy from pageable memory makes the host wait for every queued kernel
            # (torch syncs the stream after it); one from pinned memory is queued like a kernel
            return z.pin_memory().to(self.device, non_blocking=True)
        return z.to(self.device)

    def configure_optimizers(self):
        make = instantiate(self.hparams.optimizer)  # a partial of the optimizer class
        optimizers = []
        for network in (self.discriminator, self.generator):
            optimizer = make(network.parameters())
            slopes = self.slopes_of(network)
            if slopes:  # TPReLU's slopes stay in [0, 1]: clamped after each step (the paper's)
                optimizer.register_step_post_hook(lambda *_, s=slopes: clamp_slopes_(s))
            optimizers.append(optimizer)
        return tuple(optimizers)

    def slopes_of(self, network: torch.nn.Module) -> list[torch.Tensor]:
        """The TPReLU slopes among `network`'s parameters."""
        params = dict(network.named_parameters())
        return [params[name] for name in slope_names(network)]

    def training_step(self, batch, batch_idx: int) -> None:
        real = batch[0]  # (B, C, H, W) in [0, 1]; (K, B, C, H, W) for K packed copies
        n = real.shape[-4]
        opt_d, opt_g = self.optimizers()
        G, D = self.networks()
        if self._compiled:
            # CUDA graphs (train.compile=reduce-overhead) reuse their output memory from one
            # iteration to the next; this says where an iteration begins
            torch.compiler.cudagraph_mark_step_begin()

        self.toggle_optimizer(opt_d)
        fake = G(self.sample_codes(n)).detach()
        d_real = D(real)
        d_fake = D(fake)
        d_loss = self.loss.discriminator(d_real, d_fake)
        if self.penalty:
            # through D as built: torch.compile has no double backward
            d_loss = d_loss + self.penalty(self.discriminator, real, fake, self.uniform)
        self._step(opt_d, d_loss)
        self.untoggle_optimizer(opt_d)

        self.toggle_optimizer(opt_g)  # D's parameters stop requiring grad meanwhile
        d_gen = D(G(self.sample_codes(n)))
        g_loss = self.loss.generator(d_gen)
        self._step(opt_g, g_loss)
        self.untoggle_optimizer(opt_g)

        self.iteration += 1
        if self._compile_started is not None:
            self._report_compilation()
        self._unread.append(torch.stack([d_loss, g_loss, self.loss.output(d_real).mean(-1),
                                         self.loss.output(d_fake).mean(-1)], dim=-1).detach())

    def _report_compilation(self) -> None:
        """The first compiled iteration compiles every variant G and D are called in (with
        and without their parameters requiring grad); its time is the compilation's."""
        self.compile_seconds = time.perf_counter() - self._compile_started
        self._compile_started = None
        if self._ranks()[0] == 0:
            print(f"gansweep: train.compile={self.compile_mode}: the first iteration took "
                  f"{self.compile_seconds:.1f} s (compiling G and D)", file=sys.stderr,
                  flush=True)

    def _step(self, optimizer, loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        # packed copies: each copy's gradient is that of its own loss, as if it were alone
        self.manual_backward(loss.sum() if loss.dim() else loss)
        optimizer.step()

    def read_losses(self) -> bool:
        """Bring the unread iterations' losses back from the device: one sync, and under DDP
        one all-reduce (rows become means over all ranks, so every rank decides alike: call it
        on every rank at the same iteration). Appends `(iteration, losses)` to `self.read`,
        where the writers (`callbacks.LossHistory`) take them.

        Returns whether every loss so far was finite. At the first that was not, the run
        stops there: `diverged_at` and `iteration` become that iteration, its row is the last
        one kept, and training ends after the current iteration."""
        if self._unread:
            rows = torch.stack(self._unread)  # (iterations, len(LOSS_COLUMNS))
            trainer = self.attached_trainer()
            if trainer is not None and trainer.world_size > 1:
                rows = trainer.strategy.reduce(rows, reduce_op="mean")
            first = self.iteration - len(self._unread) + 1
            self._unread = []
            for iteration, losses in enumerate(rows.tolist(), start=first):
                if self.diverged_at is not None:
                    break
                self.read.append((iteration, losses))
                self.latest_losses = dict(zip(LOSS_COLUMNS, losses))
                if not all(map(math.isfinite, losses)):
                    self.diverged_at = self.iteration = iteration
                    if trainer is not None:
                        trainer.should_stop = True  # the run ends here, as a result
        return self.diverged_at is None

    def generator_alone(self) -> contextlib.AbstractContextManager[torch.nn.Module]:
        """G itself (callbacks.RunModule: a packed seed's G is unpacked for the block)."""
        return contextlib.nullcontext(self.generator)

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
