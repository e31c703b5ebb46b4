"""The paper's ResNet: shapes, ranges, the 21 layers, fresh WN blocks, the norms present."""

import pytest
import torch
from conftest import NORMS
from torch import nn

from gansweep.method.layers import (
    Addition,
    ChannelAffine,
    TPReLU,
    WNAddition,
    WNConv2d,
    WNConvTranspose2d,
    WNLinear,
)
from gansweep.method.norms import VARIANTS, layers_for
from gansweep.nets.resnet import DBlock, Discriminator, GBlock, Generator

SMALL = dict(widths=(8, 16, 16, 32, 32), blocks=2)
WEIGHTED = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("size", [32, 64, 128])
def test_shapes_and_ranges(norm, size):
    g = Generator(norm, size, code_dim=16, **SMALL)
    d = Discriminator(norm, size, **SMALL)
    x = g(torch.randn(2, 16))
    assert x.shape == (2, 3, size, size) and x.min() >= 0 and x.max() <= 1
    logits = d(x)
    assert logits.shape == (2,) and torch.isfinite(logits).all()


def main_path_layers(net):
    """Weighted layers on the main path: everything but the shortcut projections."""
    shortcut = {id(m) for name, mod in net.named_modules()
                if name.endswith(("shortcut", "project")) and isinstance(mod, nn.Sequential)
                for m in mod.modules()}
    return [m for m in net.modules() if isinstance(m, WEIGHTED) and id(m) not in shortcut]


@pytest.mark.parametrize("norm", NORMS)
def test_default_network_has_21_layers(norm):
    d, g = Discriminator(norm, 64), Generator(norm, 64)
    assert len(main_path_layers(d)) == 21  # 5 levels x 2 blocks x 2 convs + the final conv
    assert len(main_path_layers(g)) == 21  # the first linear + 5 x 2 x 2 convs
    assert [b.residual[0].stride for b in d.blocks][:4] == [(2, 2), (1, 1), (2, 2), (1, 1)]
    assert d.head.kernel_size == (2, 2)  # 64 px halved 5 times


def test_fresh_wn_blocks_output_their_shortcut():
    torch.manual_seed(0)
    layers = layers_for("wn")
    x = torch.randn(2, 8, 16, 16)
    for block in (DBlock(layers, 8, 16, 2), GBlock(layers, 8, 4, 2), GBlock(layers, 8, 8, 1)):
        assert isinstance(block.add, WNAddition)
        residual, shortcut = block.residual(x), block.shortcut(x) if isinstance(block, DBlock) \
            else nn.functional.interpolate(block.project(x), scale_factor=block.stride)
        torch.testing.assert_close(block.add(residual, shortcut), shortcut, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(block(x), block.act(shortcut), rtol=1e-5, atol=1e-6)


def test_wn_resnet_has_only_wn_layers_and_the_papers_extras():
    g, d = Generator("wn", 64, **SMALL), Discriminator("wn", 64, **SMALL)
    for net in (g, d):
        for plain in (nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d):
            assert not [m for m in net.modules() if type(m) is plain]
        assert len([m for m in net.modules() if isinstance(m, WNAddition)]) == 10
        assert [m for m in net.modules() if isinstance(m, TPReLU)]
    assert isinstance(g.project, WNLinear) and g.project.affine  # AWN linear, then PReLU
    assert isinstance(g.start[1], nn.PReLU)
    assert isinstance(d.head, WNConv2d) and d.head.affine
    assert isinstance(g.blocks[-1].act, ChannelAffine)  # the last block: affine, no act
    strict = [m for m in d.blocks.modules() if isinstance(m, (WNConv2d, WNConvTranspose2d))]
    assert strict and not any(m.affine for m in strict)


@pytest.mark.parametrize("norm, bn", [("vanilla", 0), ("bn", 1), ("sn", 0)])
def test_plain_resnets_use_plain_addition(norm, bn):
    d = Discriminator(norm, 64, **SMALL)
    assert len([m for m in d.modules() if isinstance(m, Addition)]) == 10
    assert not [m for m in d.modules() if isinstance(m, (WNAddition, WNConv2d))]
    assert bool([m for m in d.modules() if isinstance(m, nn.BatchNorm2d)]) == bool(bn)


def test_image_size_must_fit_the_levels():
    with pytest.raises(ValueError, match="multiple of 32"):
        Discriminator("wn", 48)


def test_every_norm_in_conf_has_its_layers_in_code_and_no_other():
    assert sorted(VARIANTS) == NORMS
