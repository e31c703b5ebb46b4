"""DCGAN-style generator and discriminator of Xiang & Li (docs/method.md, "The method", Networks).

4x4 convs with stride 2 and padding 1; widths start at `width` and double per level; the
number of levels comes from the image size (halve while >= 8: 64 px -> 4 levels, 32 px -> 3).
`norm` is the variant's activation norm (BN for bn, nothing for the others), `act` its
activation (`gansweep/method/norms.py`).

D: conv(C->w) act, conv(w->2w) norm act, ..., conv(kernel = remaining map size) -> 1 logit.
G: linear(code -> top*h*w) -> reshape -> norm act -> transposed convs halving the width ->
   transposed conv to C channels -> sigmoid (images live in [0, 1]).

Departures from the paper: none known. The first linear of G has its weight scaled by 0.01
(the authors' init) in every variant.
"""

from __future__ import annotations

import torch
from torch import nn

from gansweep.method.layers import scale_weight_
from gansweep.method.norms import layers_for


def dcgan_levels(image_size: int) -> tuple[int, int]:
    """(number of stride-2 levels, final map size) for a square image of `image_size` pixels."""
    size, levels = image_size, 0
    while size >= 8:
        if size % 2:
            raise ValueError(
                f"DCGAN needs an image size that halves evenly down to below 8 px; "
                f"{image_size} px reaches odd size {size}. Use e.g. 32 or 64 (dataset.image_size)."
            )
        size //= 2
        levels += 1
    if levels == 0:
        raise ValueError(f"DCGAN needs images of at least 8 px; got {image_size} px.")
    return levels, size


def _widths(width: int, levels: int) -> list[int]:
    return [width * 2**i for i in range(levels)]  # e.g. [64, 128, 256, 512] for 4 levels


class Discriminator(nn.Module):
    def __init__(self, norm: str, image_size: int, channels: int = 3, width: int = 64):
        super().__init__()
        layers = layers_for(norm)
        levels, final_size = dcgan_levels(image_size)
        widths = _widths(width, levels)
        body = [layers.conv(channels, widths[0], 4, 2, 1, norm_follows=False),
                layers.act(widths[0])]
        for cin, cout in zip(widths, widths[1:]):
            body += [layers.conv(cin, cout, 4, 2, 1), layers.activation_norm(cout),
                     layers.act(cout)]
        self.body = nn.Sequential(*body)
        # (B, top, s, s) -> (B, 1, 1, 1)
        self.head = layers.affine_conv(widths[-1], 1, final_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [0, 1] -> logits (B,)."""
        return self.head(self.body(x)).flatten()


class Generator(nn.Module):
    def __init__(
        self, norm: str, image_size: int, channels: int = 3, width: int = 64, code_dim: int = 128
    ):
        super().__init__()
        layers = layers_for(norm)
        levels, final_size = dcgan_levels(image_size)
        widths = _widths(width, levels)[::-1]  # top width first
        self.code_dim = code_dim
        self.top_shape = (widths[0], final_size, final_size)
        self.project = layers.linear(code_dim, widths[0] * final_size**2)
        scale_weight_(self.project, 0.01)  # the authors' init for the first layer
        body = [layers.activation_norm(widths[0]), layers.act(widths[0])]
        for cin, cout in zip(widths, widths[1:]):
            body += [layers.conv_t(cin, cout, 4, 2, 1), layers.activation_norm(cout),
                     layers.act(cout)]
        body += [layers.affine_conv_t(widths[-1], channels, 4, 2, 1), nn.Sigmoid()]
        self.body = nn.Sequential(*body)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (B, code_dim) -> images (B, C, H, W) in [0, 1]."""
        h = self.project(z).view(-1, *self.top_shape)  # (B, top, s, s)
        return self.body(h)
