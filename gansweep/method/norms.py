"""The normalisation axis: which layers an architecture gets for each `norm` choice.

Architectures never branch on the norm; they ask a `Layers` object for a hidden conv, an
output conv, an activation, and so on. Adding a norm means adding one `Layers` subclass here
and one `conf/norm/*.yaml`.

Paper variants (docs/method.md, "The method", Networks):
- vanilla: plain layers with bias, PReLU.
- bn: plain layers, BatchNorm2d after hidden layers (`activation_norm`), PReLU. Convs followed by BN
  carry no bias (see `Layers.norm_cancels_bias`).
- wn: hidden layers strict WN + TPReLU; output layers affine WN; WN addition in ResNets.

Beyond the paper:
- wn_affine: affine WN in every layer, PReLU (the authors' extra variant).
- ln: layer normalisation where bn has BatchNorm (per sample, over channels and space, with a
  per-channel affine), PReLU; no batch statistics, so it suits gradient penalties, which
  score each image alone (Gulrajani et al. 2017 advise it for a penalised critic). The
  layers before it keep their bias, as in compare_gan's layer norm variant.
- sn: spectral normalisation (torch's parametrization) on every weighted layer of both
  networks, biases and PReLU, no BN. Applied to G as well as D (as in SAGAN) because the
  `norm` axis treats both networks alike; large studies (Kurach et al. 2019) applied it to D.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from gansweep.method.layers import (
    Addition,
    TPReLU,
    WNAddition,
    WNConv2d,
    WNConvTranspose2d,
    WNLinear,
)


class Layers:
    """vanilla: plain layers with bias and PReLU. Base class of every variant."""

    name = "vanilla"
    # Whether `activation_norm` removes any per-channel constant added to its input, so that
    # the layer before it would carry a bias with no effect on the output (and one that
    # only drifts). A norm cancels a per-channel bias exactly when it subtracts a per-channel
    # mean: batch norm does (each channel's mean over the batch and positions); layer norm
    # does not (one mean per image over all channels and positions, which leaves every
    # channel's bias minus the mean bias in the output); no norm cancels nothing.
    norm_cancels_bias = False
    # What a norm allows beyond eager training of one run, asked by gansweep.validate: None,
    # or why not (the sentence a refusal gives). Packing runs copies through torch.func
    # (gansweep/training/stacking.py); compiling, through torch.compile.
    cannot_pack: str | None = None
    cannot_compile: str | None = None
    # What a gradient penalty on D means under this norm, where it is not what the penalty's
    # paper meant (said once per job, never refused)
    penalty_caveat: str | None = None

    # Hidden layers: `norm_follows=False` marks one the architecture leaves without
    # `activation_norm` (D's first conv).
    def _bias(self, norm_follows: bool) -> bool:
        return not (norm_follows and self.norm_cancels_bias)

    def linear(self, cin: int, cout: int, norm_follows: bool = True) -> nn.Module:
        return nn.Linear(cin, cout, bias=self._bias(norm_follows))

    def conv(self, cin, cout, kernel, stride=1, padding=0, norm_follows=True) -> nn.Module:
        return nn.Conv2d(cin, cout, kernel, stride, padding, bias=self._bias(norm_follows))

    def conv_t(self, cin, cout, kernel, stride=1, padding=0, norm_follows=True) -> nn.Module:
        return nn.ConvTranspose2d(cin, cout, kernel, stride, padding, bias=self._bias(norm_follows))

    # Affine layers keep their own scale and shift (a bias, or affine WN's gamma and beta)
    # because no norm follows them: the networks' last layers and the ResNet G's first.
    def affine_linear(self, cin, cout) -> nn.Module:
        """The ResNet G's first layer (followed by PReLU)."""
        return nn.Linear(cin, cout)

    def affine_conv(self, cin, cout, kernel, stride=1, padding=0) -> nn.Module:
        """A network's last conv."""
        return nn.Conv2d(cin, cout, kernel, stride, padding)

    def affine_conv_t(self, cin, cout, kernel, stride=1, padding=0) -> nn.Module:
        return nn.ConvTranspose2d(cin, cout, kernel, stride, padding)

    def activation_norm(self, channels: int) -> nn.Module:
        """What follows a hidden layer (one with `norm_follows`) before its activation:
        BatchNorm for `bn`, nothing for the others (WN normalises weights instead)."""
        return nn.Identity()

    def act(self, channels: int) -> nn.Module:
        return nn.PReLU(channels, init=0.25)

    def add(self, channels: int) -> nn.Module:
        """How a residual block joins its two paths."""
        return Addition(channels)


class BatchNormLayers(Layers):
    name = "bn"
    norm_cancels_bias = True
    penalty_caveat = (
        "BN makes D's output on an image depend on the rest of its batch, so a gradient "
        "penalty does not penalise each image's own input gradient (and its batch moves BN's "
        "running statistics); Gulrajani et al. advise layer norm in a penalised critic: norm=ln")

    def activation_norm(self, channels: int) -> nn.Module:
        return nn.BatchNorm2d(channels)


class LayerNormLayers(BatchNormLayers):
    """ln: BN's placement, with layer normalisation instead: each sample normalised over its
    channels and positions together, then a per-channel scale and shift. GroupNorm with one
    group is exactly that (nn.LayerNorm's affine would be per position as well). Its one
    mean per image does not cancel the previous layer's per-channel bias, so that layer
    keeps it (compare_gan's layer norm variant does too)."""

    name = "ln"
    norm_cancels_bias = False
    penalty_caveat = None  # one sample's statistics: each image's gradient is its own

    def activation_norm(self, channels: int) -> nn.Module:
        return nn.GroupNorm(1, channels)


class WeightNormLayers(Layers):
    name = "wn"

    def linear(self, cin, cout, norm_follows=True):
        return WNLinear(cin, cout)

    def conv(self, cin, cout, kernel, stride=1, padding=0, norm_follows=True):
        return WNConv2d(cin, cout, kernel, stride, padding)

    def conv_t(self, cin, cout, kernel, stride=1, padding=0, norm_follows=True):
        return WNConvTranspose2d(cin, cout, kernel, stride, padding)

    def affine_conv(self, cin, cout, kernel, stride=1, padding=0):
        return WNConv2d(cin, cout, kernel, stride, padding, affine=True)

    def affine_conv_t(self, cin, cout, kernel, stride=1, padding=0):
        return WNConvTranspose2d(cin, cout, kernel, stride, padding, affine=True)

    def affine_linear(self, cin, cout):
        return WNLinear(cin, cout, affine=True)

    def act(self, channels):
        return TPReLU(channels)

    def add(self, channels):
        return WNAddition(channels)


class AffineWeightNormLayers(WeightNormLayers):
    name = "wn_affine"

    def linear(self, cin, cout, norm_follows=True):
        return WNLinear(cin, cout, affine=True)

    def conv(self, cin, cout, kernel, stride=1, padding=0, norm_follows=True):
        return WNConv2d(cin, cout, kernel, stride, padding, affine=True)

    def conv_t(self, cin, cout, kernel, stride=1, padding=0, norm_follows=True):
        return WNConvTranspose2d(cin, cout, kernel, stride, padding, affine=True)

    def act(self, channels):
        return nn.PReLU(channels, init=0.25)


class SpectralNormLayers(Layers):
    name = "sn"
    # each forward updates the power iteration's vectors in place
    cannot_pack = "torch.func cannot run spectral norm's in-place power iteration"
    cannot_compile = ("torch.compile keeps spectral norm's power-iteration vectors, which each "
                      "forward updates in place, for the backward instead of copies (the "
                      "ResNet's D step fails)")

    def linear(self, cin, cout, norm_follows=True):
        return spectral_norm(super().linear(cin, cout, norm_follows))

    def conv(self, cin, cout, kernel, stride=1, padding=0, norm_follows=True):
        return spectral_norm(super().conv(cin, cout, kernel, stride, padding, norm_follows))

    def conv_t(self, cin, cout, kernel, stride=1, padding=0, norm_follows=True):
        return spectral_norm(super().conv_t(cin, cout, kernel, stride, padding, norm_follows))

    def affine_linear(self, cin, cout):
        return spectral_norm(super().affine_linear(cin, cout))

    def affine_conv(self, cin, cout, kernel, stride=1, padding=0):
        return spectral_norm(super().affine_conv(cin, cout, kernel, stride, padding))

    def affine_conv_t(self, cin, cout, kernel, stride=1, padding=0):
        return spectral_norm(super().affine_conv_t(cin, cout, kernel, stride, padding))


VARIANTS: dict[str, type[Layers]] = {
    cls.name: cls for cls in (Layers, BatchNormLayers, LayerNormLayers, WeightNormLayers,
                              AffineWeightNormLayers, SpectralNormLayers)
}


def layers_for(norm: str) -> Layers:
    """The layer factory of one norm variant; a clear error lists the known ones."""
    try:
        return VARIANTS[norm]()
    except KeyError:
        raise ValueError(f"unknown norm {norm!r}; choose one of {sorted(VARIANTS)}") from None
