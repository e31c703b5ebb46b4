"""DCGAN shapes, ranges, levels, and that each norm variant really contains its norm."""

import pytest
import torch
from conftest import NORMS
from torch import nn

from gansweep.method.layers import TPReLU, WNConv2d, WNConvTranspose2d, WNLinear
from gansweep.nets.dcgan import Discriminator, Generator, dcgan_levels


@pytest.mark.parametrize("size, levels, final", [(16, 2, 4), (32, 3, 4), (64, 4, 4), (128, 5, 4),
                                                 (48, 3, 6)])
def test_levels_follow_image_size(size, levels, final):
    assert dcgan_levels(size) == (levels, final)


@pytest.mark.parametrize("size", [4, 7, 36, 100])
def test_bad_image_size_is_a_clear_error(size):
    with pytest.raises(ValueError, match="image size|at least 8 px"):
        dcgan_levels(size)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("size", [16, 32, 64])
def test_shapes_and_ranges(norm, size):
    g = Generator(norm, size, channels=3, width=8, code_dim=16)
    d = Discriminator(norm, size, channels=3, width=8)
    x = g(torch.randn(2, 16))
    assert x.shape == (2, 3, size, size)
    assert x.min() >= 0 and x.max() <= 1
    logits = d(x)
    assert logits.shape == (2,)
    assert torch.isfinite(logits).all()


def test_widths_double_per_level():
    d = Discriminator("vanilla", 64, width=64)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert convs[-1].kernel_size == (4, 4)
    g = Generator("vanilla", 64, width=64, code_dim=128)
    assert g.project.out_features == 512 * 4 * 4
    deconvs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [c.out_channels for c in deconvs] == [256, 128, 64, 3]


def modules_of(net, kind):
    return [m for m in net.modules() if type(m) is kind]


@pytest.mark.parametrize("net", ["G", "D"])
def test_vanilla_has_plain_layers_with_bias_and_prelu(net):
    m = Generator("vanilla", 32) if net == "G" else Discriminator("vanilla", 32)
    assert not modules_of(m, nn.BatchNorm2d)
    assert not any(isinstance(x, (WNLinear, WNConv2d, WNConvTranspose2d, TPReLU))
                   for x in m.modules())
    weighted = [x for x in m.modules() if isinstance(x, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
    assert weighted and all(x.bias is not None for x in weighted)
    assert modules_of(m, nn.PReLU)


def test_bn_placement_follows_the_paper():
    g, d = Generator("bn", 64), Discriminator("bn", 64)
    # G: after the reshaped linear and every transposed conv but the output (4 levels -> 4 BN)
    assert len(modules_of(g, nn.BatchNorm2d)) == 4
    # D: after every conv but the first and the final one (4 levels -> 3 BN)
    assert len(modules_of(d, nn.BatchNorm2d)) == 3
    assert d.body[0].bias is not None  # D's first conv has no BN after it, so it keeps a bias
    assert d.head.bias is not None and g.body[-2].bias is not None
    for net in (g, d):
        assert not any(isinstance(x, (WNLinear, WNConv2d, WNConvTranspose2d, TPReLU))
                       for x in net.modules())


@pytest.mark.parametrize("net", ["G", "D"])
def test_wn_has_no_plain_weighted_layer_and_affine_outputs(net):
    m = Generator("wn", 32) if net == "G" else Discriminator("wn", 32)
    for plain in (nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.PReLU):
        assert not modules_of(m, plain), f"plain {plain.__name__} in the WN {net}"
    wn = [x for x in m.modules() if isinstance(x, (WNLinear, WNConv2d, WNConvTranspose2d))]
    assert [x.affine for x in wn] == [False] * (len(wn) - 1) + [True]  # only the output affine
    assert len(modules_of(m, TPReLU)) == len(wn) - 1  # every hidden layer has its TPReLU
    assert all(x.bias is None for x in wn)


def test_first_generator_layer_is_scaled_down():
    torch.manual_seed(0)
    g = Generator("vanilla", 32, code_dim=128)
    reference = nn.Linear(128, g.project.out_features)  # torch's default init, same shapes
    ratio = (g.project.weight.abs().mean() / reference.weight.abs().mean()).item()
    assert ratio == pytest.approx(0.01, rel=0.1)


def test_sn_wraps_every_weighted_layer_in_spectral_norm():
    from torch.nn.utils import parametrize

    for net in (Generator("sn", 32), Discriminator("sn", 32)):
        weighted = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d,
                                                               nn.ConvTranspose2d))]
        assert weighted and all(parametrize.is_parametrized(m, "weight") for m in weighted)
        assert not modules_of(net, nn.BatchNorm2d)


def test_wn_affine_is_affine_everywhere_with_prelu():
    for net in (Generator("wn_affine", 32), Discriminator("wn_affine", 32)):
        wn = [x for x in net.modules() if isinstance(x, (WNLinear, WNConv2d, WNConvTranspose2d))]
        assert wn and all(x.affine for x in wn)
        assert modules_of(net, nn.PReLU) and not modules_of(net, TPReLU)


@pytest.mark.parametrize("norm", NORMS)
def test_first_layer_scaling_reaches_the_raw_weight(norm):
    torch.manual_seed(0)
    g = Generator(norm, 32, code_dim=16)
    raw = getattr(g.project, "parametrizations", None)
    weight = raw.weight.original if raw is not None else g.project.weight
    assert weight.abs().mean().item() < 0.02 * (1 / 16) ** 0.5


@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
def test_ln_keeps_every_bias_as_vanilla_does(arch):
    """Layer norm takes one mean per image, which leaves a per-channel bias in the output,
    so no layer before it may drop its bias (only batch norm cancels one)."""
    from gansweep.nets import resnet

    nets = {"dcgan": (Generator("ln", 32, width=8), Discriminator("ln", 32, width=8)),
            "resnet": (resnet.Generator("ln", 32, widths=[8, 16, 16], blocks=1),
                       resnet.Discriminator("ln", 32, widths=[8, 16, 16], blocks=1))}[arch]
    for net in nets:
        weighted = [x for x in net.modules()
                    if isinstance(x, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
        assert modules_of(net, nn.GroupNorm)
        assert weighted and all(x.bias is not None for x in weighted)


def test_ln_block_equals_the_reference_conv_with_bias_then_layer_norm():
    """compare_gan's layer norm variant: conv2d with its bias, then layer normalisation over
    channels and positions of each image with a per-channel scale and shift (Ba et al.
    2016), written out here by hand in float64."""
    torch.manual_seed(0)
    d = Discriminator("ln", 32, width=4).double()
    conv, norm = d.body[2], d.body[3]
    with torch.no_grad():
        conv.bias.copy_(torch.randn_like(conv.bias))
        norm.weight.copy_(1 + 0.1 * torch.randn_like(norm.weight))
        norm.bias.copy_(0.1 * torch.randn_like(norm.bias))
    x = torch.randn(3, conv.in_channels, 16, 16, dtype=torch.float64)
    h = nn.functional.conv2d(x, conv.weight, stride=2, padding=1) + conv.bias[:, None, None]
    mean = h.mean(dim=(1, 2, 3), keepdim=True)
    var = h.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
    reference = (norm.weight[:, None, None] * (h - mean) / torch.sqrt(var + norm.eps)
                 + norm.bias[:, None, None])
    assert torch.allclose(norm(conv(x)), reference, atol=1e-12)
    without_bias = h - conv.bias[:, None, None]
    normed = (without_bias - without_bias.mean(dim=(1, 2, 3), keepdim=True)) / torch.sqrt(
        without_bias.var(dim=(1, 2, 3), unbiased=False, keepdim=True) + norm.eps)
    # the bias is not cancelled: the same block without it is another function
    assert not torch.allclose(norm.weight[:, None, None] * normed + norm.bias[:, None, None],
                              reference, atol=1e-3)
