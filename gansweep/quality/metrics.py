"""FID and KID from two sets of features, through torchmetrics.

torchmetrics' `FrechetInceptionDistance` and `KernelInceptionDistance` take images and a
feature network; given a "network" that passes its input through (`GivenFeatures`), they
take features, which is what lets the real images' features be computed once per data set
and cached (gansweep/quality/extractors.py makes them). The formulas are theirs:
- FID (Heusel et al. 2017): ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)), the
  Fréchet distance of two Gaussians fitted to the features;
- KID (Bińkowski et al. 2018): the unbiased squared MMD with the kernel
  k(x, y) = (x.y / d + 1)^3, averaged over `subsets` random subsets of `subset_size` from
  each side (its std over them is reported too). Unbiased at any sample size, which FID is not.

KID draws its subsets from torch's global generator; here it draws them from `seed`, so a
run's KID is the same number every time it is computed (a resumed run's `quality.csv` is
the uninterrupted one's).

Under DDP only rank 0 computes them (callbacks.SampleQuality), with every feature it needs:
torchmetrics' default, gathering each metric's state from all ranks when it computes, would
wait forever for ranks that never call it (`sync_on_compute=False`).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

METRICS = ("fid", "kid")


class GivenFeatures(nn.Module):
    """A feature network for torchmetrics that returns its input: the features are given."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID between (n, d) feature sets (torchmetrics' computation, in float64)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=GivenFeatures(real.shape[1]),
                                      sync_on_compute=False)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return float(metric.compute())


def kernel_distance(real: torch.Tensor, fake: torch.Tensor, subsets: int, subset_size: int,
                    seed: int) -> tuple[float, float]:
    """KID (mean, std over the subsets) between (n, d) feature sets; `subset_size` is capped
    at the smaller set's size."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(real), len(fake))
    with warnings.catch_warnings():  # that it keeps every feature: the sets are given whole
        warnings.filterwarnings("ignore", "Metric `Kernel Inception Distance` will save")
        metric = KernelInceptionDistance(feature=GivenFeatures(real.shape[1]),
                                         subsets=subsets, subset_size=size,
                                         sync_on_compute=False)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def quality(real: torch.Tensor, fake: torch.Tensor, metrics: list[str], kid_subsets: int,
            kid_subset_size: int, seed: int) -> dict[str, float]:
    """{metric: value} of `metrics` (and `kid_std` with `kid`) between the feature sets."""
    values = {}
    if "fid" in metrics:
        values["fid"] = frechet_distance(real, fake)
    if "kid" in metrics:
        values["kid"], values["kid_std"] = kernel_distance(real, fake, kid_subsets,
                                                           kid_subset_size, seed)
    return values
