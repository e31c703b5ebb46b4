"""The GAN losses (the `loss` axis) and gradient penalties (the `penalty` axis).

D's outputs are raw scores (logits); the batch is their last dimension and packed copies
stand in front of it, so every loss here is a mean over the last dimension: one value per
copy, each copy's own (docs/method.md, "The method", Losses and penalties, says which paper each
comes from).

- nonsaturating (the paper's): D minimises BCE(D(x), 1) + BCE(D(G(z)), 0), G minimises
  BCE(D(G(z)), 1).
- wasserstein: D minimises mean D(G(z)) - mean D(x), G minimises -mean D(G(z)); D is a
  critic, whose Lipschitz bound comes from a penalty (or from the norm, as with sn).
- least_squares: D minimises (D(x) - 1)^2 / 2 + D(G(z))^2 / 2, G minimises
  (D(G(z)) - 1)^2 / 2 (targets 1 for real, 0 for fake, 1 for G).
- hinge: D minimises relu(1 - D(x)) + relu(1 + D(G(z))), G minimises -mean D(G(z)).

A penalty is added to D's loss, `weight` times the mean over the batch of
(||grad_x D(x_hat)||_2 - 1)^2, the gradient taken through D with `create_graph` so that D's
step differentiates it:
- wgan_gp: x_hat on the line from a fake to a real image, at a uniform random point;
- dragan: x_hat a real image plus uniform noise of +-half the batch's pixel std, kept in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def batch_loss(logits: torch.Tensor, target: float) -> torch.Tensor:
    """BCE on logits, averaged over the batch (the last dimension; packed copies, in front
    of it, get a loss each)."""
    targets = torch.full_like(logits, target)
    if logits.dim() == 1:  # one run: torch's own mean, one op fewer per loss than the below
        return F.binary_cross_entropy_with_logits(logits, targets)
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(-1)


class NonSaturating:
    name = "nonsaturating"

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return batch_loss(real, 1.0) + batch_loss(fake, 0.0)

    def generator(self, gen: torch.Tensor) -> torch.Tensor:
        return batch_loss(gen, 1.0)

    def output(self, scores: torch.Tensor) -> torch.Tensor:
        """What train.csv's d_real and d_fake average: here D's probability that an image is
        real; the other losses' D gives a score, which they average as it is."""
        return torch.sigmoid(scores)


class Wasserstein(NonSaturating):
    name = "wasserstein"

    def discriminator(self, real, fake):
        return fake.mean(-1) - real.mean(-1)

    def generator(self, gen):
        return -gen.mean(-1)

    def output(self, scores):
        return scores


class LeastSquares(Wasserstein):
    name = "least_squares"

    def discriminator(self, real, fake):
        return 0.5 * ((real - 1).square().mean(-1) + fake.square().mean(-1))

    def generator(self, gen):
        return 0.5 * (gen - 1).square().mean(-1)


class Hinge(Wasserstein):
    name = "hinge"

    def discriminator(self, real, fake):
        return F.relu(1 - real).mean(-1) + F.relu(1 + fake).mean(-1)


LOSSES = {cls.name: cls for cls in (NonSaturating, Wasserstein, LeastSquares, Hinge)}
# the defaults (conf/config.yaml), which runs made before these axes existed trained with
DEFAULT_LOSS, NO_PENALTY = NonSaturating.name, "none"

# uniform draws of a shape, for a penalty's random points: the module's own (each packed
# copy's from its own generator, so a copy draws what its run alone draws)
Uniform = Callable[..., torch.Tensor]


def gradient_penalty(discriminator: torch.nn.Module, points: torch.Tensor) -> torch.Tensor:
    """mean over the batch of (||grad D(points)||_2 - 1)^2, differentiable w.r.t. D's
    parameters; one value per packed copy (each copy's D sees only its own points)."""
    points = points.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(points).sum(), points, create_graph=True)
    norms = torch.linalg.vector_norm(grad.flatten(-3), dim=-1)  # per image: over C, H, W
    return (norms - 1).square().mean(-1)


def wgan_gp_points(real: torch.Tensor, fake: torch.Tensor, uniform: Uniform) -> torch.Tensor:
    """Gulrajani et al.: a uniform random point between each real and fake image."""
    at = uniform(real.shape[-4], 1, 1, 1)
    return torch.lerp(fake, real, at)


def dragan_points(real: torch.Tensor, fake: torch.Tensor, uniform: Uniform) -> torch.Tensor:
    """DRAGAN's points (Kodali et al. 2017) in compare_gan's form (Kurach et al. 2019): each
    real image perturbed by symmetric uniform noise in +-std/2, where std is the pixels' std
    over the batch (each packed copy's own batch), then clipped to the image range [0, 1].
    Kodali et al.'s own code, and PyTorch-StudioGAN after it, perturb one way only
    (x + std/2 * U(0, 1), unclipped); gansweep follows compare_gan, the study whose loss x
    penalty x norm grid its own repeats."""
    std = real.flatten(-4).std(-1).view(*real.shape[:-4], 1, 1, 1, 1)
    noise = uniform(*real.shape[-4:]) - 0.5
    return (real + std * noise).clamp(0, 1)


PENALTY_POINTS = {"wgan_gp": wgan_gp_points, "dragan": dragan_points}
PENALTIES = [NO_PENALTY, *PENALTY_POINTS]


class Penalty:
    """`penalty.name` at `penalty.weight`; `none` adds nothing and draws nothing."""

    def __init__(self, name: str = NO_PENALTY, weight: float | None = None):
        self.name, self.weight = name, weight
        self.points = PENALTY_POINTS.get(name)

    def __bool__(self) -> bool:
        return self.points is not None

    def __call__(self, discriminator, real, fake, uniform: Uniform) -> torch.Tensor:
        points = self.points(real, fake.detach(), uniform)
        return self.weight * gradient_penalty(discriminator, points)
