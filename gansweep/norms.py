"""The normalisation axis: which layers an architecture gets for each `norm` choice.

Architectures never branch on the norm; they ask a `Layers` object for a hidden conv, an
output conv, an activation, and so on. Adding a norm means adding one `Layers` subclass here
and one `conf/norm/*.yaml`.

Paper variants (README, "The method", Networks):
- vanilla: plain layers with bias, PReLU.
- bn: plain layers, BatchNorm2d after hidden layers (`post`), PReLU. Convs followed by BN
  carry no bias (BN's shift makes it redundant).
- wn: hidden layers strict WN + TPReLU; output layers affine WN; WN addition in ResNets.

Beyond the paper:
- wn_affine: affine WN in every layer, PReLU (the authors' extra variant).
- sn: spectral normalisation (torch's parametrization) on every weighted layer of both
  networks, biases and PReLU, no BN. Applied to G as well as D (as in SAGAN) because the
  `norm` axis treats both networks alike; large studies (Kurach et al. 2019) applied it to D.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from gansweep.layers import Addition, TPReLU, WNAddition, WNConv2d, WNConvTranspose2d, WNLinear


class Layers:
    """vanilla: plain layers with bias and PReLU. Base class of every variant."""

    name = "vanilla"
    has_post = False  # True where `post` is a real norm layer

    # Hidden layers: `normed=False` marks one the architecture leaves without `post` (D's
    # first conv); only layers followed by a real norm drop their bias.
    def _bias(self, normed: bool) -> bool:
        return not (normed and self.has_post)

    def linear(self, cin: int, cout: int, normed: bool = True) -> nn.Module:
        return nn.Linear(cin, cout, bias=self._bias(normed))

    def conv(self, cin, cout, kernel, stride=1, padding=0, normed=True) -> nn.Module:
        return nn.Conv2d(cin, cout, kernel, stride, padding, bias=self._bias(normed))

    def conv_t(self, cin, cout, kernel, stride=1, padding=0, normed=True) -> nn.Module:
        return nn.ConvTranspose2d(cin, cout, kernel, stride, padding, bias=self._bias(normed))

    def out_linear(self, cin, cout) -> nn.Module:
        """A linear layer with a bias/affine, e.g. the ResNet G's first (followed by PReLU)."""
        return nn.Linear(cin, cout)

    def out_conv(self, cin, cout, kernel, stride=1, padding=0) -> nn.Module:
        """A network's last conv: never followed by a norm, always with a bias/affine."""
        return nn.Conv2d(cin, cout, kernel, stride, padding)

    def out_conv_t(self, cin, cout, kernel, stride=1, padding=0) -> nn.Module:
        return nn.ConvTranspose2d(cin, cout, kernel, stride, padding)

    def post(self, channels: int) -> nn.Module:
        """What follows a normed hidden layer before its activation (BN for `bn`)."""
        return nn.Identity()

    def act(self, channels: int) -> nn.Module:
        return nn.PReLU(channels, init=0.25)

    def add(self, channels: int) -> nn.Module:
        """How a residual block joins its two paths."""
        return Addition(channels)


class BatchNormLayers(Layers):
    name = "bn"
    has_post = True

    def post(self, channels: int) -> nn.Module:
        return nn.BatchNorm2d(channels)


class WeightNormLayers(Layers):
    name = "wn"

    def linear(self, cin, cout, normed=True):
        return WNLinear(cin, cout)

    def conv(self, cin, cout, kernel, stride=1, padding=0, normed=True):
        return WNConv2d(cin, cout, kernel, stride, padding)

    def conv_t(self, cin, cout, kernel, stride=1, padding=0, normed=True):
        return WNConvTranspose2d(cin, cout, kernel, stride, padding)

    def out_conv(self, cin, cout, kernel, stride=1, padding=0):
        return WNConv2d(cin, cout, kernel, stride, padding, affine=True)

    def out_conv_t(self, cin, cout, kernel, stride=1, padding=0):
        return WNConvTranspose2d(cin, cout, kernel, stride, padding, affine=True)

    def out_linear(self, cin, cout):
        return WNLinear(cin, cout, affine=True)

    def act(self, channels):
        return TPReLU(channels)

    def add(self, channels):
        return WNAddition(channels)


class AffineWeightNormLayers(WeightNormLayers):
    name = "wn_affine"

    def linear(self, cin, cout, normed=True):
        return WNLinear(cin, cout, affine=True)

    def conv(self, cin, cout, kernel, stride=1, padding=0, normed=True):
        return WNConv2d(cin, cout, kernel, stride, padding, affine=True)

    def conv_t(self, cin, cout, kernel, stride=1, padding=0, normed=True):
        return WNConvTranspose2d(cin, cout, kernel, stride, padding, affine=True)

    def act(self, channels):
        return nn.PReLU(channels, init=0.25)


class SpectralNormLayers(Layers):
    name = "sn"

    def linear(self, cin, cout, normed=True):
        return spectral_norm(super().linear(cin, cout, normed))

    def conv(self, cin, cout, kernel, stride=1, padding=0, normed=True):
        return spectral_norm(super().conv(cin, cout, kernel, stride, padding, normed))

    def conv_t(self, cin, cout, kernel, stride=1, padding=0, normed=True):
        return spectral_norm(super().conv_t(cin, cout, kernel, stride, padding, normed))

    def out_linear(self, cin, cout):
        return spectral_norm(super().out_linear(cin, cout))

    def out_conv(self, cin, cout, kernel, stride=1, padding=0):
        return spectral_norm(super().out_conv(cin, cout, kernel, stride, padding))

    def out_conv_t(self, cin, cout, kernel, stride=1, padding=0):
        return spectral_norm(super().out_conv_t(cin, cout, kernel, stride, padding))


VARIANTS: dict[str, type[Layers]] = {
    cls.name: cls for cls in (Layers, BatchNormLayers, WeightNormLayers, AffineWeightNormLayers,
                              SpectralNormLayers)
}


def layers_for(norm: str) -> Layers:
    """The layer factory of one norm variant; a clear error lists the known ones."""
    try:
        return VARIANTS[norm]()
    except KeyError:
        raise ValueError(f"unknown norm {norm!r}; choose one of {sorted(VARIANTS)}") from None
