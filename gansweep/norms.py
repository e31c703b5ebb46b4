"""The normalisation axis: which layers an architecture gets for each `norm` choice.

Architectures never branch on the norm; they ask a `Layers` object for a hidden conv, an
output conv, an activation, and so on. Adding a norm means adding one `Layers` subclass here
and one `conf/norm/*.yaml`.

Paper variants (`shared/paper.md`, "Networks"):
- vanilla: plain layers with bias, PReLU.
- bn: plain layers, BatchNorm2d after hidden layers (`post`), PReLU. Convs followed by BN
  carry no bias (BN's shift makes it redundant).
- wn: hidden layers strict WN + TPReLU; output layers affine WN.
"""

from __future__ import annotations

from torch import nn

from gansweep.layers import TPReLU, WNConv2d, WNConvTranspose2d, WNLinear


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

    def act(self, channels):
        return TPReLU(channels)


VARIANTS: dict[str, type[Layers]] = {cls.name: cls for cls in (Layers, BatchNormLayers, WeightNormLayers)}


def layers_for(norm: str) -> Layers:
    """The layer factory of one norm variant; a clear error lists the known ones."""
    try:
        return VARIANTS[norm]()
    except KeyError:
        raise ValueError(f"unknown norm {norm!r}; choose one of {sorted(VARIANTS)}") from None
