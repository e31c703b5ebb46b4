"""The paper's layers against their formulas (README, "The method", Layers)."""

import math

import pytest
import torch
import torch.nn.functional as F

from gansweep.layers import EPS, TPReLU, WNAddition, WNConv2d, WNConvTranspose2d, WNLinear

torch.manual_seed(0)


def per_unit_norm(w, out_dim):
    dims = [d for d in range(w.dim()) if d != out_dim]
    return torch.sqrt(w.pow(2).sum(dims, keepdim=True) + EPS)


def randomize_affine(layer):
    with torch.no_grad():
        layer.gamma.uniform_(0.5, 2.0)
        layer.beta.normal_()


def test_strict_wn_linear_matches_formula():
    layer = WNLinear(7, 5)
    x = torch.randn(4, 7)
    w = layer.weight
    expected = x @ (w / per_unit_norm(w, 0)).T
    torch.testing.assert_close(layer(x), expected)


def test_affine_wn_linear_matches_formula():
    layer = WNLinear(7, 5, affine=True)
    randomize_affine(layer)
    x = torch.randn(4, 7)
    w = layer.weight
    expected = layer.gamma * (x @ w.T) / per_unit_norm(w, 0).T + layer.beta
    torch.testing.assert_close(layer(x), expected)


@pytest.mark.parametrize("affine", [False, True])
def test_wn_conv_matches_formula(affine):
    layer = WNConv2d(3, 6, 4, stride=2, padding=1, affine=affine)
    if affine:
        randomize_affine(layer)
    x = torch.randn(2, 3, 8, 8)
    w = layer.weight  # (out, in, kh, kw): norm over in, kh, kw
    y = F.conv2d(x, w, stride=2, padding=1) / per_unit_norm(w, 0).view(1, -1, 1, 1)
    if affine:
        y = layer.gamma.view(1, -1, 1, 1) * y + layer.beta.view(1, -1, 1, 1)
    torch.testing.assert_close(layer(x), y)


@pytest.mark.parametrize("stride", [1, 2, (2, 1)])
def test_wn_conv_transpose_matches_formula_with_stride_factor(stride):
    layer = WNConvTranspose2d(4, 3, 4, stride=stride, padding=1, affine=True)
    randomize_affine(layer)
    x = torch.randn(2, 4, 5, 5)
    w = layer.weight  # (in, out, kh, kw): norm over in, kh, kw per out channel
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    y = F.conv_transpose2d(x, w, stride=stride, padding=1) / per_unit_norm(w, 1).view(1, -1, 1, 1)
    y = y * math.sqrt(sh * sw)
    y = layer.gamma.view(1, -1, 1, 1) * y + layer.beta.view(1, -1, 1, 1)
    torch.testing.assert_close(layer(x), y)


LAYERS = [
    lambda: (WNLinear(16, 8), torch.randn(5, 16)),
    lambda: (WNConv2d(4, 8, 3, 1, 1), torch.randn(2, 4, 6, 6)),
    lambda: (WNConvTranspose2d(4, 8, 4, 2, 1), torch.randn(2, 4, 5, 5)),
]


@pytest.mark.parametrize("make", LAYERS)
def test_output_invariant_to_scaling_raw_weight(make):
    layer, x = make()
    before = layer(x)
    with torch.no_grad():
        layer.weight.mul_(3.7)
    torch.testing.assert_close(layer(x), before, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make", LAYERS)
def test_gradient_wrt_raw_weight_is_orthogonal_to_it(make):
    layer, x = make()
    out = layer(x)
    (out * torch.randn_like(out)).sum().backward()
    w, g = layer.weight, layer.weight.grad
    out_dim = 1 if isinstance(layer, WNConvTranspose2d) else 0
    w_units = w.transpose(0, out_dim).flatten(1)  # (out, everything else)
    g_units = g.transpose(0, out_dim).flatten(1)
    cosine = (w_units * g_units).sum(1) / (w_units.norm(dim=1) * g_units.norm(dim=1))
    assert g_units.norm(dim=1).min() > 0  # a real gradient, not a zero one
    assert cosine.abs().max() < 1e-4


def interior_variance(layer, x):
    with torch.no_grad():
        y = layer(x)
    return y[:, :, 4:-4, 4:-4].var().item()


def test_transposed_conv_factor_makes_variance_independent_of_stride():
    """Unit-variance input: a stride-1 and a stride-2 WN transposed conv give the same output
    variance (~1). Without the sqrt(s_h s_w) factor the stride-2 one would give ~1/4."""
    torch.manual_seed(1)
    x = torch.randn(8, 64, 16, 16)
    stride1 = interior_variance(WNConvTranspose2d(64, 64, 3, 1, 1), x)
    stride2 = interior_variance(WNConvTranspose2d(64, 64, 4, 2, 1), x)
    stride21 = interior_variance(WNConvTranspose2d(64, 64, 4, (2, 1), 1), x)
    for v in (stride1, stride2, stride21):
        assert v == pytest.approx(1.0, rel=0.15)
    unscaled = WNConvTranspose2d(64, 64, 4, 2, 1)
    unscaled.unit_gain.fill_(1.0)
    assert interior_variance(unscaled, x) == pytest.approx(0.25, rel=0.15)


def test_tprelu_matches_formula():
    act = TPReLU(3)
    with torch.no_grad():
        act.threshold.copy_(torch.tensor([0.0, 0.5, -1.0]))
        act.slope.copy_(torch.tensor([0.25, 0.1, 0.9]))
    x = torch.randn(4, 3, 5, 5)
    a = act.threshold.view(1, 3, 1, 1)
    p = act.slope.view(1, 3, 1, 1)
    expected = torch.where(x >= a, x, p * (x - a) + a)
    torch.testing.assert_close(act(x), expected)
    torch.testing.assert_close(act(x[:, :, 0, 0]), expected[:, :, 0, 0])  # (B, C) input too


def test_tprelu_gradients_match_the_formulas():
    """Its gradients for x, the threshold and the slope are those of the paper's formula."""
    act = TPReLU(3)
    with torch.no_grad():
        act.threshold.copy_(torch.tensor([0.0, 0.5, -1.0]))
        act.slope.copy_(torch.tensor([0.25, 0.1, 0.9]))
    x = torch.randn(4, 3, 5, 5, requires_grad=True)
    weights = torch.randn(4, 3, 5, 5)
    (act(x) * weights).sum().backward()
    ours = [x.grad.clone(), act.threshold.grad.clone(), act.slope.grad.clone()]
    x.grad = None
    a = act.threshold.detach().clone().requires_grad_()
    p = act.slope.detach().clone().requires_grad_()
    a4, p4 = a.view(1, 3, 1, 1), p.view(1, 3, 1, 1)
    (torch.where(x >= a4, x, p4 * (x - a4) + a4) * weights).sum().backward()
    for got, want in zip(ours, [x.grad, a.grad, p.grad]):
        torch.testing.assert_close(got, want)


def test_tprelu_init_is_prelu_with_quarter_slope():
    act = TPReLU(4)
    x = torch.randn(3, 4, 2, 2)
    torch.testing.assert_close(act(x), F.prelu(x, torch.full((4,), 0.25)))


def test_tprelu_slope_stays_in_unit_interval():
    """Whatever the raw parameter becomes (here pushed out by big optimiser steps), the slope
    applied lies in [0, 1]."""
    act = TPReLU(2)
    opt = torch.optim.SGD(act.parameters(), lr=100.0)
    x = -torch.rand(16, 2) - 1.0  # all below the threshold: the slope matters
    for sign in (1.0, -1.0):
        opt.zero_grad()
        (sign * act(x).sum()).backward()
        opt.step()
        raw = act.slope.detach().clone()
        assert ((raw < 0) | (raw > 1)).any()  # the raw parameter did leave [0, 1]
        y = act(x)
        effective = (y - act.threshold) / (x - act.threshold)
        assert effective.min() >= 0.0 and effective.max() <= 1.0 + 1e-6


def test_wn_addition_starts_as_shortcut_and_matches_formula():
    add = WNAddition(3)
    residual, shortcut = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(add(residual, shortcut), shortcut, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        add.u.copy_(torch.tensor([1.0, -2.0, 0.3]))
        add.v.copy_(torch.tensor([0.5, 1.0, 0.0]))
    u, v = add.u.view(1, 3, 1, 1), add.v.view(1, 3, 1, 1)
    expected = (u * residual + v * shortcut) / torch.sqrt(u**2 + v**2 + EPS)
    torch.testing.assert_close(add(residual, shortcut), expected)


@pytest.mark.parametrize("make", LAYERS)
def test_double_backward_through_wn_matches_the_plain_formula(make):
    """A gradient penalty differentiates the gradient w.r.t. the input: the fused op's double
    backward must equal the plain formula's (float64, so rounding cannot hide a difference)."""
    layer, x = make()
    layer, x = layer.double(), x.double().requires_grad_(True)

    def penalty_grad(fused):
        layer.fused = fused
        layer.zero_grad()
        (grad_x,) = torch.autograd.grad(layer(x).pow(2).sum(), x, create_graph=True)
        grad_x.pow(2).sum().backward()
        return layer.weight.grad.clone()

    fused = penalty_grad(True)
    assert fused.abs().max() > 0  # a real second-order gradient, not a zero one
    torch.testing.assert_close(fused, penalty_grad(False))
