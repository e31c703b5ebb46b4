"""The default data set: scikit-learn's 1,797 handwritten digits, shipped inside its wheel.

It needs no download, so `python -m gansweep` works on a new machine. The 8x8 images (17 grey
levels) are upsampled bilinearly to `image_size` and repeated to `channels`, so the networks
see the same shapes as on the paper's RGB data sets.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset


class Digits(TensorDataset):
    """(image,) tuples, images (C, H, W) in [0, 1]: light strokes on a dark background;
    `labels`: each image's digit (the sample-quality classifier learns them)."""

    def __init__(self, image_size: int = 32, channels: int = 3):
        from sklearn.datasets import load_digits  # heavy import, only when this set is used

        digits = load_digits()
        raw = digits.images  # (1797, 8, 8), values 0..16
        self.labels = torch.from_numpy(digits.target).long()
        self.fingerprint = f"digits-{len(raw)}-{hashlib.sha1(raw.tobytes()).hexdigest()[:12]}"
        x = torch.from_numpy(raw).float().div(16.0).unsqueeze(1)  # (N, 1, 8, 8)
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
        super().__init__(x.clamp(0.0, 1.0).expand(-1, channels, -1, -1).contiguous())
