"""The paper's layers: weight-normalised Linear/Conv2d/ConvTranspose2d, TPReLU, WN addition.

Xiang & Li, "On the Effects of Batch and Weight Normalization in Generative Adversarial
Networks" (arXiv 1704.03971), section 3; docs/method.md, "The method", Layers, says it in our words.

- Strict WN:  y = (w . x) / ||w||            (no gain, no bias)
- Affine WN:  y = gamma * (w . x) / ||w|| + beta
  ||w|| is per output unit, over every other weight axis, with an eps inside the root.
- Transposed convs are multiplied by sqrt(stride_h * stride_w): each output pixel sees only
  1 / (s_h * s_w) of the taps, so without it the output variance would depend on the stride.
- Gradients come from autograd through the formula. The authors' first hand-written backward
  was wrong; autograd is the true gradient by construction.

The normalisation runs in torch's fused weight-norm op (`torch._weight_norm`, the one behind
`torch.nn.utils.parametrizations.weight_norm`): one kernel forward and one backward per layer
instead of five and about ten, and a GPU iteration of a small GAN is bound by launches. WN
addition's coefficients are a normalised vector too and use the same op. It has no eps:
||w|| is sqrt(sum w^2) where the paper writes sqrt(sum w^2 + 1e-6), a relative difference of
1e-6 / (2 ||w||^2), below float32 rounding for any weight whose norm is not near zero
(tests/test_layers.py checks both against the paper's formula). The parametrization itself
is not used: it would rename `weight` in every checkpoint.

The WN layers subclass the torch layers so they keep torch's default init and attributes
(`in_channels`, `stride`, ...); only `forward` changes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def normalised(weight: torch.Tensor, out_dim: int, gain: torch.Tensor,
               fused: bool = True) -> torch.Tensor:
    """`weight` divided by its L2 norm per slice along `out_dim` (over all other axes), times
    `gain` (one value per slice). `fused=False` spells the same formula out in plain ops, for
    `torch.func.vmap`, which has no batching rule for the fused one and would run it copy by
    copy (correct, but K launches where packing wants one)."""
    last = weight.dim() - 1
    if fused and out_dim not in (0, last):  # the fused kernel takes the first or last dim:
        swapped = normalised(weight.transpose(0, out_dim), 0, gain)  # a transpose is a view
        return swapped.transpose(0, out_dim)
    shape = [1] * weight.dim()
    shape[out_dim] = -1
    gain = gain.view(shape)
    if fused:
        return torch._weight_norm(weight, gain, out_dim)
    others = [d for d in range(weight.dim()) if d != out_dim]
    return weight * (gain / weight.pow(2).sum(others, keepdim=True).sqrt())


def _per_channel(param: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a per-channel vector to broadcast over dim 1 of `like` ((B, C) or (B, C, H, W))."""
    return param.view(1, -1, *([1] * (like.dim() - 2)))


class _Affine(nn.Module):
    """gamma * y + beta per output channel; the affine half of affine WN (identity if strict)."""

    fused = True  # WN through torch's fused op; `stacking.Packed` turns it off in its copies

    def _init_affine(self, channels: int, affine: bool, scale: float = 1.0) -> None:
        self.affine, self.scale = affine, scale
        if affine:
            self.gamma = nn.Parameter(torch.ones(channels))
            self.beta = nn.Parameter(torch.zeros(channels))
        else:  # WN's fused op takes a gain: a strict layer's is constant, kept on the device
            self.register_buffer("unit_gain", torch.full((channels,), scale), persistent=False)

    def _apply_affine(self, y: torch.Tensor) -> torch.Tensor:
        if not self.affine:
            return y
        return _per_channel(self.gamma, y) * y + _per_channel(self.beta, y)

    def _gain_and_bias(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """WN's gain per output unit and the layer's bias: gamma * (w . x) / ||w|| + beta is
        (gamma w / ||w||) . x + beta, an affine layer's weighted op with that weight and bias,
        no elementwise op after it."""
        if not self.affine:
            return self.unit_gain, None
        return (self.gamma * self.scale if self.scale != 1.0 else self.gamma), self.beta

    def extra_repr(self) -> str:
        return super().extra_repr() + f", affine={self.affine}"


class WNLinear(_Affine, nn.Linear):
    """Strict (affine=False) or affine weight-normalised linear layer."""

    def __init__(self, in_features: int, out_features: int, affine: bool = False):
        nn.Linear.__init__(self, in_features, out_features, bias=False)
        self._init_affine(out_features, affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gain, bias = self._gain_and_bias()
        return F.linear(x, normalised(self.weight, 0, gain, self.fused), bias)


class WNConv2d(_Affine, nn.Conv2d):
    """Strict or affine weight-normalised convolution; weight (out, in, kh, kw)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, affine=False):
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self._init_affine(out_channels, affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gain, bias = self._gain_and_bias()
        return F.conv2d(x, normalised(self.weight, 0, gain, self.fused), bias, self.stride, self.padding)


class WNConvTranspose2d(_Affine, nn.ConvTranspose2d):
    """Strict or affine weight-normalised transposed convolution; weight (in, out, kh, kw).

    The output is scaled by sqrt(stride_h * stride_w) (paper, section 3.2).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, affine=False):
        nn.ConvTranspose2d.__init__(
            self, in_channels, out_channels, kernel_size, stride, padding, bias=False
        )
        self._init_affine(out_channels, affine, scale=math.sqrt(self.stride[0] * self.stride[1]))
        # The same values, laid out in memory as (out, in, kh, kw): the fused op normalises
        # along dim 0 of a contiguous tensor, and on this layout the transpose it reads is
        # one. Saves a copy in each forward and the gradient's re-layout in each backward.
        self.weight = nn.Parameter(self.weight.detach().transpose(0, 1).contiguous()
                                   .transpose(0, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gain, bias = self._gain_and_bias()
        w = normalised(self.weight, 1, gain, self.fused)
        return F.conv_transpose2d(x, w, bias, self.stride, self.padding)


class TPReLU(nn.Module):
    """Translated parametric ReLU: x if x >= a, else p * (x - a) + a.

    `a` (the threshold that absorbs the removed bias) per channel, init 0; slope `p` per
    channel, init 0.25, kept in [0, 1] as the authors keep it: clamped after every optimiser
    step (`clamp_slopes_`, which `gan.GAN.configure_optimizers` hooks to both optimisers).
    A clamp inside forward would cost an op in every forward and one in every backward.
    """

    def __init__(self, channels: int, slope: float = 0.25):
        super().__init__()
        self.threshold = nn.Parameter(torch.zeros(channels))
        self.slope = nn.Parameter(torch.full((channels,), slope))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # a + PReLU(x - a) is the formula above (up to rounding in (x - a) + a) in three
        # kernels instead of five: fewer launches, and a GPU iteration is bound by them.
        a = _per_channel(self.threshold, x)
        return F.prelu(x - a, self.slope) + a


def slope_names(network: nn.Module) -> list[str]:
    """The state_dict names of `network`'s TPReLU slopes (the parameters kept in [0, 1])."""
    return [f"{name}.slope" if name else "slope"
            for name, module in network.named_modules() if isinstance(module, TPReLU)]


@torch.no_grad()
def clamp_slopes_(slopes: list[torch.Tensor]) -> None:
    """Clamp TPReLU slopes into [0, 1] in place: two ops for all of them (a step hook)."""
    if slopes:
        torch._foreach_clamp_min_(slopes, 0.0)
        torch._foreach_clamp_max_(slopes, 1.0)


class WNAddition(nn.Module):
    """(u * residual + v * shortcut) / sqrt(u^2 + v^2) per channel; init u=0, v=1.

    With u = 0 a fresh block outputs exactly its shortcut. The coefficients are the
    per-channel vector (u, v) normalised: WN's fused op again, one op each way instead of
    about five forward and twelve backward.
    """

    fused = True  # see `_Affine.fused`

    def __init__(self, channels: int):
        super().__init__()
        self.u = nn.Parameter(torch.zeros(channels))
        self.v = nn.Parameter(torch.ones(channels))
        self.register_buffer("unit_gain", torch.ones(channels), persistent=False)

    def forward(self, residual: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        uv = normalised(torch.stack([self.u, self.v]), 1, self.unit_gain, self.fused)
        u, v = uv.unbind(0)
        return _per_channel(u, residual) * residual + _per_channel(v, shortcut) * shortcut


class Addition(nn.Module):
    """residual + shortcut: the plain counterpart of `WNAddition` (vanilla, BN, SN)."""

    def __init__(self, channels: int):
        super().__init__()

    def forward(self, residual: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        return residual + shortcut


class ChannelAffine(_Affine):
    """gamma * x + beta per channel; ends the ResNet generator's last block (paper)."""

    def __init__(self, channels: int):
        super().__init__()
        self._init_affine(channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._apply_affine(x)

    def extra_repr(self) -> str:
        return f"{self.gamma.numel()}"


@torch.no_grad()
def scale_weight_(layer: nn.Module, factor: float) -> None:
    """Scale a layer's raw weight in place (the stored one, also under a parametrization
    such as spectral norm, whose `.weight` is computed and would ignore the change)."""
    parametrizations = getattr(layer, "parametrizations", None)
    raw = parametrizations.weight.original if parametrizations is not None else layer.weight
    raw.mul_(factor)
