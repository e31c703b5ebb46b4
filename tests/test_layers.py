"""The paper's layers against their formulas (docs/method.md, "The method", Layers)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gansweep.benchmark.train import OpCounter
from gansweep.method.layers import (
    TPReLU,
    WNAddition,
    WNConv2d,
    WNConvTranspose2d,
    WNLinear,
    clamp_slopes_,
    slope_names,
)

torch.manual_seed(0)
# The paper's eps, inside the root of every norm. The layers' fused op has none: their outputs
# differ from the paper's by a relative 1e-6 / (2 ||w||^2), about 1.5e-6 at torch's default
# init (||w||^2 ~ 1/3 per unit). The float32 comparisons below use assert_close's defaults
# (rtol 1.3e-6, atol 1e-5), which that difference stays within for outputs of order one;
# test_fused_wn_differs_from_the_papers_formula_by_its_eps_alone checks it in float64.
EPS = 1e-6


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


def test_clamping_the_slopes_bounds_them_to_the_unit_interval_and_nothing_else():
    net = nn.Sequential(TPReLU(4), nn.Linear(4, 4), nn.Sequential(TPReLU(4)))
    assert slope_names(net) == ["0.slope", "2.0.slope"]
    params = dict(net.named_parameters())
    slopes = [params[name] for name in slope_names(net)]
    with torch.no_grad():
        for s in slopes:
            s.copy_(torch.tensor([-0.5, 0.0, 0.3, 1.7]))
    before = {name: p.detach().clone() for name, p in params.items()}
    clamp_slopes_(slopes)
    for name, p in params.items():
        want = before[name].clamp(0, 1) if name in slope_names(net) else before[name]
        assert torch.equal(p, want), name


def test_wn_addition_starts_as_shortcut_and_matches_formula():
    add = WNAddition(3)
    residual, shortcut = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    assert torch.equal(add(residual, shortcut), shortcut)
    with torch.no_grad():
        add.u.copy_(torch.tensor([1.0, -2.0, 0.3]))
        add.v.copy_(torch.tensor([0.5, 1.0, 0.0]))
    u, v = add.u.view(1, 3, 1, 1), add.v.view(1, 3, 1, 1)
    expected = (u * residual + v * shortcut) / torch.sqrt(u**2 + v**2 + EPS)
    # no eps in the fused op: relative 1e-6 / (2 (u^2 + v^2)), 5.6e-6 in the third channel
    torch.testing.assert_close(add(residual, shortcut), expected, rtol=1e-5, atol=1e-5)


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


@pytest.mark.parametrize("affine", [False, True], ids=["strict", "affine"])
@pytest.mark.parametrize("make", [
    lambda affine: (WNLinear(16, 8, affine=affine), torch.randn(5, 16)),
    lambda affine: (WNConv2d(4, 8, 3, 1, 1, affine=affine), torch.randn(2, 4, 6, 6)),
    lambda affine: (WNConvTranspose2d(4, 8, 4, 2, 1, affine=affine), torch.randn(2, 4, 5, 5)),
], ids=["linear", "conv", "conv_t"])
def test_a_wn_layer_normalises_in_one_fused_op_each_way_without_copying_its_weight(make, affine):
    """What makes WN cheap to launch: one normalisation op forward and one backward, the
    affine's gamma and beta folded into the weighted op (no elementwise op after it), and no
    copy of the weight in the forward (a transposed conv's weight is laid out for it)."""
    layer, x = make(affine)
    out = OpCounter()
    with out:
        y = layer(x)
    back = OpCounter()
    with back:
        y.sum().backward()
    assert out.names.count("_weight_norm_interface") == 1
    assert back.names.count("_weight_norm_interface_backward") == 1
    assert not {"clone", "copy_", "contiguous"} & set(out.names), out.names
    assert set(out.names) <= {"_weight_norm_interface", "mul", "convolution", "mm", "addmm"}
    assert back.names.count("clone") <= 1 and "copy_" not in back.names, back.names


def test_tprelu_runs_in_three_ops_forward_with_no_clamp():
    """The slope's clamp is the optimiser step's (clamp_slopes_), not an op per forward."""
    act, x = TPReLU(3), torch.randn(2, 3, 4, 4)
    out = OpCounter()
    with out:
        act(x)
    assert sorted(out.names) == ["_prelu_kernel", "add", "sub"]


@pytest.mark.parametrize("make", LAYERS)
def test_fused_wn_differs_from_the_papers_formula_by_its_eps_alone(make):
    """In float64: equal to the plain formula without the eps to rounding, and as far from
    the paper's as the eps predicts, 1e-6 / (2 ||w||^2) relative per output unit."""
    layer, x = make()
    layer, x = layer.double(), x.double()
    out_dim = 1 if isinstance(layer, WNConvTranspose2d) else 0
    w = layer.weight.detach()
    squared = w.pow(2).sum([d for d in range(w.dim()) if d != out_dim])  # ||w||^2 per unit
    with torch.no_grad():
        fused = layer(x)
        layer.fused = False
        torch.testing.assert_close(fused, layer(x), rtol=1e-12, atol=1e-12)
        # the paper's w / sqrt(||w||^2 + eps) is this layer with gain ||w|| / sqrt(||w||^2 + eps)
        layer.unit_gain.mul_(torch.sqrt(squared / (squared + EPS)))
        paper = layer(x)
    relative = ((fused - paper) / paper).transpose(0, 1).reshape(len(squared), -1)
    torch.testing.assert_close(relative.median(dim=1).values, EPS / (2 * squared),
                               rtol=1e-3, atol=0)
    assert (EPS / (2 * squared)).max() < 1e-5  # at default init: below float32's tolerance


def test_wn_addition_gradients_and_double_backward_match_the_plain_formula():
    """WN addition's fused coefficients give autograd's gradients of (u r + v s) /
    sqrt(u^2 + v^2), first and second order (float64)."""
    add = WNAddition(3).double()
    with torch.no_grad():
        add.u.copy_(torch.tensor([1.0, -2.0, 0.3]))
        add.v.copy_(torch.tensor([0.5, 1.0, 0.0]))
    residual, shortcut = torch.randn(2, 3, 4, 4, dtype=torch.float64), torch.randn(2, 3, 4, 4,
                                                                                 dtype=torch.float64)
    residual.requires_grad_(True)

    def grads(fused):
        add.fused = fused
        add.zero_grad()
        (grad_r,) = torch.autograd.grad(add(residual, shortcut).pow(2).sum(), residual,
                                        create_graph=True)
        grad_r.pow(2).sum().backward()
        return add.u.grad.clone(), add.v.grad.clone()

    fused = grads(True)
    assert all(g.abs().max() > 0 for g in fused)
    for got, want in zip(fused, grads(False)):
        torch.testing.assert_close(got, want)
