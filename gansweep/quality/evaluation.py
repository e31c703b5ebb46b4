"""A run's sample-quality test: G's samples against the training images, in one feature
network's features (FID, KID: gansweep/quality/metrics.py).

The real images' features (and, for the digits classifier, the classifier itself) are
computed once per data set, split and extractor and kept beside the split
(`<split>.<extractor>.pt`), with what they were made from: the split file's digest, the
number of images, and for Inception the weights file's digest. A changed split, data set or
weights file makes them again; nothing stale is reused.

G's samples come from codes of the run's own (`seed + 20_000`), the same at every
evaluation, so the series moves with G alone.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from gansweep.errors import naming
from gansweep.quality.extractors import (ClassifierFeatures, InceptionFeatures,
                                         default_inception_weights, train_digits_classifier,
                                         unit_variance_scale)
from gansweep.quality.metrics import quality

CHUNK = 100  # images through the feature network at once (Inception resizes to 299 px)
CODES_SEED = 20_000  # beside the training codes (seed) and the sample grids' (seed + 10_000)
# what a cache file's content means; a cache of another form is made again
CACHE_FORM = 2  # 2: the classifier's features scaled to unit variance


@dataclass(frozen=True)
class QualitySettings:
    metrics: tuple[str, ...]
    n_samples: int
    extractor: str  # resolved: inception or digits-classifier
    inception_weights: str | None
    kid_subsets: int
    kid_subset_size: int


def quality_settings(quality, dataset: str) -> QualitySettings:
    """A run's `quality` config node (`gansweep/settings.py`'s Quality) as QualitySettings,
    its extractor resolved for `dataset`."""
    return QualitySettings(tuple(quality.metrics), quality.n_samples,
                           resolved_extractor(quality.extractor, dataset),
                           quality.inception_weights, quality.kid_subsets,
                           quality.kid_subset_size)


def resolved_extractor(extractor: str, dataset: str) -> str:
    """`auto`: the classifier for the shipped digits, which Inception does not fit (8x8
    grey strokes, far from ImageNet); Inception for the others."""
    if extractor != "auto":
        return extractor
    return "digits-classifier" if dataset == "digits" else "inception"


def weights_path(settings: QualitySettings) -> Path:
    return Path(settings.inception_weights or default_inception_weights())


def _digest(path: Path) -> str:
    sha = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def features_of(network: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(N, d) features of images in [0, 1], CHUNK at a time, on the network's device."""
    device = next(network.parameters()).device
    return torch.cat([network(chunk.to(device, torch.float32)).double().cpu()
                      for chunk in images.split(CHUNK)])


class QualityTest:
    """FID/KID of a G's samples (`__call__`) against `data`'s training images."""

    def __init__(self, settings: QualitySettings, data, seed: int):
        self.settings, self.seed = settings, seed
        self.name = settings.extractor
        self.network, self.real = self._reference(data)

    def columns(self) -> list[str]:
        """quality.csv's columns (and the W&B keys' ends), named with the features."""
        names = [*self.settings.metrics, *(["kid_std"] if "kid" in self.settings.metrics
                                          else [])]
        return [f"{name}[{self.name}]" for name in names]

    def _reference(self, data) -> tuple[torch.nn.Module, torch.Tensor]:
        train = data.split.train[:self.settings.n_samples]
        key = {"split": _digest(data.split_path), "images": len(train),
               "extractor": self.name, "form": CACHE_FORM}
        if self.name == "inception":
            weights = weights_path(self.settings)
            network = InceptionFeatures(weights)
            key["weights"] = _digest(weights)
        path = data.split_path.with_name(f"{data.split_path.stem}.{self.name}.pt")
        try:
            saved = torch.load(path, weights_only=False) if path.exists() else None
        except Exception:  # noqa: BLE001  a torn cache file is made again, as a stale one is
            saved = None
        if isinstance(saved, dict) and saved.get("key") == key:
            if self.name == "digits-classifier":
                network = self._classifier(saved["classifier"], saved["scale"])
            return network, saved["features"]
        content = {"key": key}
        images = torch.stack([data.dataset[i][0] for i in train])
        if self.name == "digits-classifier":
            content["classifier"] = self._train_classifier(data)
            raw = features_of(self._classifier(content["classifier"], 1.0), images)
            content["scale"] = unit_variance_scale(raw)
            network = self._classifier(content["classifier"], content["scale"])
        content["features"] = features_of(network, images)
        tmp = path.with_name(path.name + ".tmp")
        with naming(tmp):
            torch.save(content, tmp)
        os.replace(tmp, path)
        return network, content["features"]

    def _train_classifier(self, data) -> dict:
        labels = getattr(data.dataset, "labels", None)
        if labels is None:
            from gansweep.errors import GansweepError

            raise GansweepError(f"quality.extractor=digits-classifier: the data set "
                                f"{data.name} has no labels to train it on; use "
                                f"quality.extractor=inception")
        train = torch.tensor(data.split.train)
        images = torch.stack([data.dataset[i][0] for i in data.split.train])
        return train_digits_classifier(images, labels[train], seed=data.split.seed).state_dict()

    @staticmethod
    def _classifier(state: dict, scale: float) -> ClassifierFeatures:
        from gansweep.quality.extractors import DigitsClassifier

        classifier = DigitsClassifier()
        classifier.load_state_dict(state)
        return ClassifierFeatures(classifier.eval().requires_grad_(False), scale)

    @torch.no_grad()
    def __call__(self, generator: torch.nn.Module) -> dict[str, float] | None:
        """{column: value}, or None when G's samples are not finite (a diverged G)."""
        settings = self.settings
        param = next(generator.parameters())
        codes = torch.randn(settings.n_samples, generator.code_dim,
                            generator=torch.Generator().manual_seed(self.seed + CODES_SEED))
        was_training = generator.training
        generator.eval()
        try:
            fake = torch.cat([generator(c.to(param.device, param.dtype)).float().cpu()
                              for c in codes.split(CHUNK)])
        finally:
            generator.train(was_training)
        if not torch.isfinite(fake).all():
            return None
        self.network.to(param.device)
        values = quality(self.real, features_of(self.network, fake), list(settings.metrics),
                         settings.kid_subsets, settings.kid_subset_size, self.seed)
        return {f"{name}[{self.name}]": value for name, value in values.items()}
