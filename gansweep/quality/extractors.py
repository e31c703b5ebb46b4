"""The feature networks sample quality is measured in.

- `inception`: the FID Inception network (torch-fidelity's, through torchmetrics'
  `NoTrainInceptionV3`: its 2048 pooled features), from a local weights file. Compute nodes
  are often offline, so nothing is downloaded: a missing or damaged file is one line saying
  where to get it and where to put it, before anything is built.
- `digits-classifier`: for data Inception does not fit (8x8 digits upsampled, far from
  ImageNet), a small classifier trained on the data set's own training split, its
  penultimate layer's 64 features, scaled so that the real images' features have unit
  variance on average over their dimensions (raw, they spread over hundreds: FID in the
  thousands, and KID's cubic kernel, made for features of order one, dominated by its
  cube). Deterministic from its seed and trained in seconds. Its FID is not Inception FID,
  and every output names it (`fid[digits-classifier]`).

Both take images in [0, 1], (N, 3, H, W), and return (N, d) float features.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gansweep.errors import GansweepError, damaged, first_line

EXTRACTORS = ("inception", "digits-classifier")
INCEPTION_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 "weights-inception-2015-12-05-6726825d.pth")


def default_inception_weights() -> Path:
    """Where torch-fidelity (and torch.hub) would have downloaded the weights: torch's hub
    cache, `$TORCH_HOME/hub/checkpoints` (`~/.cache/torch/...` by default)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(INCEPTION_URL).name


def check_inception_weights(path: str | Path) -> Path:
    """`path`, if a weights file is there; else one line on how to get one."""
    path = Path(os.path.expanduser(str(path)))
    if not path.is_file():
        raise GansweepError(
            f"no Inception weights at {path}: download {INCEPTION_URL} and put the file "
            f"there (or give its path: quality.inception_weights=PATH; or measure no sample "
            f"quality: quality.metrics=[])")
    return path


class InceptionFeatures(nn.Module):
    """The FID Inception network's 2048 pooled features of images in [0, 1]."""

    num_features = 2048

    def __init__(self, weights: str | Path):
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3  # a slow import, when used

        path = check_inception_weights(weights)
        try:
            self.network = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                              feature_extractor_weights_path=str(path))
        except (RuntimeError, EOFError, OSError, KeyError, ValueError) as error:
            # torch.load's and load_state_dict's errors for a torn or foreign file
            raise damaged(path, f"not the FID Inception weights ({first_line(error)}); "
                                f"download {INCEPTION_URL} again") from None

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network((images.clamp(0, 1) * 255).round().to(torch.uint8)).float()


class DigitsClassifier(nn.Module):
    """A small CNN over (3, 32, 32) digits: two conv blocks, a 64-wide hidden layer (the
    features), ten classes."""

    num_features = 64

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 8 * 8, self.num_features), nn.ReLU())
        self.head = nn.Linear(self.num_features, 10)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(F.interpolate(images, size=(32, 32), mode="bilinear",
                                       align_corners=False))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def train_digits_classifier(images: torch.Tensor, labels: torch.Tensor, seed: int,
                            epochs: int = 8, batch_size: int = 64) -> DigitsClassifier:
    """The classifier trained on (N, 3, H, W) images and their labels, from `seed` alone
    (its own generator for the initialisation and the batch order)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitsClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for batch in order.split(batch_size):
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval().requires_grad_(False)


class ClassifierFeatures(nn.Module):
    """A trained `DigitsClassifier`'s features times `scale`, as a feature network."""

    num_features = DigitsClassifier.num_features

    def __init__(self, classifier: DigitsClassifier, scale: float = 1.0):
        super().__init__()
        self.classifier, self.scale = classifier, scale

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(images) * self.scale


def unit_variance_scale(features: torch.Tensor) -> float:
    """The factor that gives (N, d) features a mean variance of 1 over their dimensions."""
    return float(features.double().var(0).mean().rsqrt())


def accuracy(classifier: DigitsClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((classifier(images).argmax(1) == labels).float().mean())
