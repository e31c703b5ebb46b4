"""The paper's ResNet generator and discriminator (docs/method.md, "The method", Networks).

Levels of residual blocks; `widths` gives each level's channels, finest first (the
authors': 64, 128, 256, 384, 512), `blocks` the blocks per level (2).

`norm` is the variant's activation norm (BN for bn, nothing for the others), `act`
its activation.

D block: residual = conv(in->out, kernel = stride + 2, stride, pad 1) norm act
         -> conv(out->out, 3x3) norm; shortcut = 2x2 avgpool if stride 2, then a 1x1 conv
         (norm) if the channels change; joined by `add` (WN addition for wn), then act.
         Each level's first block has stride 2. After the last level: an affine conv with
         kernel = the remaining map size -> 1 logit.
G:       affine linear(code -> top * s * s, weight x 0.01) -> norm -> PReLU, then blocks
         mirroring D (residual = convT 3x3 norm act -> convT(kernel = stride + 2, stride)
         norm; shortcut = 1x1 convT (norm) if the channels change, then nearest x2
         upsampling if stride 2; `add`, act). A level's last block upsamples; the very last
         block outputs the image channels and ends in a per-channel affine instead of an
         activation, then a sigmoid.

Departures and readings: "21 layers" is read as 5 levels x 2 blocks x 2 convs + the final
conv (inferred; `blocks` and `widths` are configurable). The vanilla, BN, SN and affine-WN
ResNets are not in the authors' code: they take that variant's layers from `gansweep.method.norms`
(plain addition except for WN), with BN after every conv of the residual path and on
projection shortcuts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gansweep.method.layers import ChannelAffine, scale_weight_
from gansweep.method.norms import Layers, layers_for


def resnet_final_size(image_size: int, levels: int) -> int:
    if image_size % 2**levels:
        raise ValueError(
            f"the ResNet halves the image {levels} times (one per entry of arch widths), so "
            f"the image size must be a multiple of {2**levels}; got {image_size} px. Use fewer "
            f"levels (arch.widths) or another image size."
        )
    return image_size // 2**levels


class DBlock(nn.Module):
    def __init__(self, layers: Layers, cin: int, cout: int, stride: int):
        super().__init__()
        self.residual = nn.Sequential(
            layers.conv(cin, cout, stride + 2, stride, 1), layers.activation_norm(cout),
            layers.act(cout),
            layers.conv(cout, cout, 3, 1, 1), layers.activation_norm(cout),
        )
        shortcut = [nn.AvgPool2d(2)] if stride == 2 else []
        if cin != cout:
            shortcut += [layers.conv(cin, cout, 1), layers.activation_norm(cout)]
        self.shortcut = nn.Sequential(*shortcut)
        self.add, self.act = layers.add(cout), layers.act(cout)

    def forward(self, x):
        return self.act(self.add(self.residual(x), self.shortcut(x)))


class GBlock(nn.Module):
    def __init__(self, layers: Layers, cin: int, cout: int, stride: int, last: bool = False):
        super().__init__()
        self.residual = nn.Sequential(
            layers.conv_t(cin, cin, 3, 1, 1), layers.activation_norm(cin), layers.act(cin),
            layers.conv_t(cin, cout, stride + 2, stride, 1), layers.activation_norm(cout),
        )
        self.project = nn.Identity() if cin == cout else \
            nn.Sequential(layers.conv_t(cin, cout, 1), layers.activation_norm(cout))
        self.stride = stride
        self.add = layers.add(cout)
        self.act = ChannelAffine(cout) if last else layers.act(cout)

    def forward(self, x):
        shortcut = self.project(x)
        if self.stride == 2:
            shortcut = F.interpolate(shortcut, scale_factor=2, mode="nearest")
        return self.act(self.add(self.residual(x), shortcut))


def _level_plan(widths: list[int], blocks: int, channels: int):
    """D's blocks as (cin, cout, stride), finest level first."""
    plan, cin = [], channels
    for width in widths:
        for b in range(blocks):
            plan.append((cin, width, 2 if b == 0 else 1))
            cin = width
    return plan


class Discriminator(nn.Module):
    def __init__(self, norm: str, image_size: int, channels: int = 3,
                 widths=(64, 128, 256, 384, 512), blocks: int = 2):
        super().__init__()
        layers = layers_for(norm)
        final = resnet_final_size(image_size, len(widths))
        self.blocks = nn.Sequential(*(DBlock(layers, cin, cout, s)
                                      for cin, cout, s in _level_plan(widths, blocks, channels)))
        self.head = layers.affine_conv(widths[-1], 1, final)  # (B, top, s, s) -> (B, 1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [0, 1] -> logits (B,)."""
        return self.head(self.blocks(x)).flatten()


class Generator(nn.Module):
    def __init__(self, norm: str, image_size: int, channels: int = 3,
                 widths=(64, 128, 256, 384, 512), blocks: int = 2, code_dim: int = 128):
        super().__init__()
        layers = layers_for(norm)
        final = resnet_final_size(image_size, len(widths))
        self.code_dim = code_dim
        self.top_shape = (widths[-1], final, final)
        self.project = layers.affine_linear(code_dim, widths[-1] * final**2)
        scale_weight_(self.project, 0.01)  # the authors' init for the first layer
        self.start = nn.Sequential(layers.activation_norm(widths[-1]),
                                   nn.PReLU(widths[-1], init=0.25))
        # D's plan reversed: each (cin, cout, stride) becomes (cout -> cin), upsampling
        plan = [(cout, cin, s) for cin, cout, s in reversed(_level_plan(widths, blocks, channels))]
        self.blocks = nn.Sequential(*(GBlock(layers, cin, cout, s, last=i == len(plan) - 1)
                                      for i, (cin, cout, s) in enumerate(plan)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (B, code_dim) -> images (B, C, H, W) in [0, 1]."""
        h = self.start(self.project(z).view(-1, *self.top_shape))  # (B, top, s, s)
        return torch.sigmoid(self.blocks(h))
