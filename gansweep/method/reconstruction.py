"""The paper's reconstruction error: how well a fixed G can reproduce held-out images.

    L = (1/m) sum_i min_z ||G(z) - x_i||^2,  reported as a mean over pixels and channels
    on the [0, 1] scale (docs/method.md, "The method", The metric).

Protocol (the paper's, the defaults here): G frozen and in eval mode; every z starts at
zeros; RMSProp(lr 0.01, alpha 0.9, eps 1e-6); 50 steps. The error reported for an image is
its squared error at the last z, averaged over pixels and channels.

Batching. Each image's problem is independent, so many images are optimised at once: all of
them on a GPU, chunks of 64 on a CPU (faster there than one large batch), or `chunk_size`.
The paper minimised the MSE over batches of 32, i.e. each image's pixel-mean error divided
by 32. RMSProp is scale-invariant except for its eps, so that 1/32
matters: it sets how large the gradients are next to eps=1e-6. We keep it as a fixed
constant, `PAPER_BATCH = 32`: the objective is sum_i mean_pixels(err_i) / 32 whatever the
chunk size, so every image follows exactly the trajectory it would have followed in one of
the paper's batches of 32, and chunk sizes 1, 32 and "all" give the same per-image errors.

Memory. All images at once is fastest on a GPU but may not fit: the memory grows with the
images, and the paper's ResNet G at 64 px on the final test's 2000 images needs more than a
16 GB GPU has (docs/method.md, "The metric", the memory table). A chunk
that runs out of device memory is retried in halves, down to one image, which changes no
result (see above); `Reconstruction.chunk_size` says what fitted, so a caller that evaluates
again (the running test) starts there instead of running out of memory each time.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

PAPER_BATCH = 32
CPU_CHUNK = 64  # measured: on CPU, chunks of ~64 keep activations in cache; 200 at once is slower


@dataclass(frozen=True)
class ReconSettings:
    steps: int = 50
    lr: float = 0.01
    alpha: float = 0.9
    eps: float = 1e-6
    chunk_size: int | None = None  # images optimised together; None: CPU_CHUNK on a CPU, all on a GPU


@dataclass
class Reconstruction:
    errors: torch.Tensor  # (N,) per-image mean squared error over pixels and channels
    codes: torch.Tensor  # (N, code_dim) the final z
    images: torch.Tensor  # (N, C, H, W) G(z) at the final z
    chunk_size: int | None = None  # the largest chunk that was optimised (what fitted)

    @property
    def mean(self) -> float:
        return self.errors.mean().item()


@contextmanager
def frozen(generator: nn.Module):
    """G in eval mode with no parameter requiring grad; both restored on exit.

    Eval mode keeps BN's running statistics as they are (and makes each image's output
    independent of the others in its chunk); frozen parameters leave no gradients on G and
    spare autograd the weight gradients.
    """
    was_training = generator.training
    flags = [p.requires_grad for p in generator.parameters()]
    generator.eval()
    generator.requires_grad_(False)
    try:
        yield generator
    finally:
        for p, flag in zip(generator.parameters(), flags):
            p.requires_grad_(flag)
        generator.train(was_training)


def per_image_error(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) x2 -> (N,) mean squared error over pixels and channels."""
    return (fake - real).pow(2).flatten(1).mean(1)


def _reconstruct_chunk(generator, images, code_dim, s: ReconSettings,
                       step_done: Callable[[int], None]) -> Reconstruction:
    z = torch.zeros(len(images), code_dim, device=images.device, dtype=images.dtype,
                    requires_grad=True)
    opt = torch.optim.RMSprop([z], lr=s.lr, alpha=s.alpha, eps=s.eps)
    for _ in range(s.steps):
        opt.zero_grad(set_to_none=True)
        loss = per_image_error(generator(z), images).sum() / PAPER_BATCH
        loss.backward()
        opt.step()
        step_done(len(images))
    with torch.no_grad():
        fake = generator(z)
        return Reconstruction(per_image_error(fake, images), z.detach(), fake)


def progress_bar(label: str | None, total: int) -> tqdm:
    """A bar of `total` image-steps labelled `label` (None: none is shown). It leaves no
    line behind: the caller prints the result."""
    return tqdm(total=total, desc=label, disable=label is None, leave=False, dynamic_ncols=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")


def reconstruct(generator: nn.Module, images: torch.Tensor,
                settings: ReconSettings = ReconSettings(),
                progress: str | None = None) -> Reconstruction:
    """Optimise one code per image so that G(z) matches it; G is left exactly as it was.
    `progress`: the label of a progress bar over the steps (None: no bar)."""
    code_dim = generator.code_dim
    like = next(generator.parameters())
    device = like.device
    images = images.to(device, like.dtype)  # G's precision (a float64 run: trainer.precision)
    chunk = settings.chunk_size or (len(images) if device.type == "cuda" else CPU_CHUNK)
    parts, start = [], 0
    with frozen(generator), torch.enable_grad(), \
            progress_bar(progress, settings.steps * len(images)) as bar:
        while start < len(images):
            attempt = images[start:start + chunk]
            try:
                part = _reconstruct_chunk(generator, attempt, code_dim, settings, bar.update)
            except torch.OutOfMemoryError:
                if len(attempt) == 1:
                    raise
                chunk = (len(attempt) + 1) // 2  # the same images again, in halves
                _release_cached_memory(device)
                bar.n = start * settings.steps  # its steps are done again
                continue
            parts.append(part)
            start += len(part.errors)
    return Reconstruction(*(torch.cat(t) for t in zip(*((p.errors, p.codes, p.images)
                                                         for p in parts))),
                          chunk_size=min(chunk, len(images)))


def _release_cached_memory(device: torch.device) -> None:
    """What the failed chunk left in torch's cache goes back, so the halves can have it."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
