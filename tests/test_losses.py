"""The `loss` and `penalty` axes (gansweep/method/losses.py): each loss against its formula, each
penalty's gradient through every layer kind against finite differences, and runs."""

import json
import math

import pytest
import torch
from conftest import (
    ARCHS,
    NORMS,
    CrashAt,
    choices,
    compose_config,
    numbers,
    run_gansweep,
    train_run,
)
from hydra.utils import instantiate

from gansweep.method.losses import LOSSES, PENALTY_POINTS, Penalty, gradient_penalty

# D's logits on a batch of three real and three fake images
REAL, FAKE = [2.0, -0.5, 0.0], [-1.0, 3.0, 0.5]


def softplus(x):
    return math.log1p(math.exp(x))


def mean(values):
    return sum(values) / len(values)


# (D's loss, G's loss on FAKE), by each loss's definition, written out per image
EXPECTED = {
    "nonsaturating": (mean([softplus(-r) for r in REAL]) + mean([softplus(f) for f in FAKE]),
                      mean([softplus(-f) for f in FAKE])),
    "wasserstein": (mean(FAKE) - mean(REAL), -mean(FAKE)),
    "least_squares": (0.5 * mean([(r - 1) ** 2 for r in REAL]) + 0.5 * mean([f * f for f in FAKE]),
                      0.5 * mean([(f - 1) ** 2 for f in FAKE])),
    "hinge": (mean([max(0, 1 - r) for r in REAL]) + mean([max(0, 1 + f) for f in FAKE]),
              -mean(FAKE)),
}


def test_every_loss_has_its_formula_here():
    assert set(EXPECTED) == set(LOSSES) == set(choices("loss"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_loss_on_known_logits_is_its_formula(name):
    loss = LOSSES[name]()
    real, fake = torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)
    d_expected, g_expected = EXPECTED[name]
    assert loss.discriminator(real, fake).item() == pytest.approx(d_expected, rel=1e-12)
    assert loss.generator(fake).item() == pytest.approx(g_expected, rel=1e-12)
    # packed copies: each copy's loss is its own batch's
    packed = loss.discriminator(torch.stack([real, fake]), torch.stack([fake, real]))
    assert packed.shape == (2,)
    assert packed[0].item() == pytest.approx(d_expected, rel=1e-12)


def test_train_csv_columns_say_what_d_outputs():
    """d_real and d_fake: D's probability under the non-saturating loss, its score under the
    others (a critic's output has no probability reading)."""
    scores = torch.tensor([2.0, -3.0])
    assert torch.equal(LOSSES["nonsaturating"]().output(scores), torch.sigmoid(scores))
    for name in ("wasserstein", "least_squares", "hinge"):
        assert torch.equal(LOSSES[name]().output(scores), scores)


def uniform_from(seed):
    generator = torch.Generator().manual_seed(seed)
    return lambda *shape: torch.rand(*shape, generator=generator, dtype=torch.float64)


def test_wgan_gp_points_lie_between_real_and_fake_and_dragan_points_near_real():
    real = torch.rand(5, 3, 4, 4, dtype=torch.float64)
    fake = torch.rand(5, 3, 4, 4, dtype=torch.float64)
    points = PENALTY_POINTS["wgan_gp"](real, fake, uniform_from(0))
    at = ((points - fake) / (real - fake)).flatten(1)  # one point on each image's segment
    assert torch.allclose(at, at[:, :1].expand_as(at)) and ((at >= 0) & (at <= 1)).all()
    points = PENALTY_POINTS["dragan"](real, fake, uniform_from(0))
    assert ((points - real).abs() <= real.std() / 2 + 1e-12).all()
    assert points.min() >= 0 and points.max() <= 1


def test_the_penalty_is_zero_where_the_gradient_has_unit_norm():
    """D(x) = w . x with ||w|| = 1 has a unit gradient everywhere: no penalty; with ||w|| = 3
    it is (3 - 1)^2 = 4 at any point."""
    w = torch.randn(3, 4, 4, dtype=torch.float64)
    for norm, expected in ((1.0, 0.0), (3.0, 4.0)):
        def critic(x, w=w * norm / w.norm()):
            return (x * w).sum((-3, -2, -1))
        points = torch.rand(6, 3, 4, 4, dtype=torch.float64)
        assert gradient_penalty(critic, points).item() == pytest.approx(expected, abs=1e-10)


def tiny_discriminator(arch, norm):
    cfg = compose_config("/tmp", f"arch={arch}", f"norm={norm}", "dataset.image_size=8")
    torch.manual_seed(0)
    return instantiate(cfg.arch.discriminator, norm=norm, image_size=8, channels=3).double()


def one_parameter_per_layer_kind(network) -> list[str]:
    """The name of one parameter of each kind of layer in `network` (every parameter of a
    kind takes the same code path), the last layer's weight too (the output's gain)."""
    kinds, names = set(), []
    for prefix, module in network.named_modules():
        own = [name for name, _ in module.named_parameters(recurse=False)]
        if own and type(module).__name__ not in kinds:  # sn: a class per parametrized layer
            kinds.add(type(module).__name__)
            names += [f"{prefix}.{name}" if prefix else name for name in own]
    weights = [name for name, _ in network.named_parameters()
               if name.endswith(("weight", "original"))]
    return names if weights[-1] in names else [*names, weights[-1]]


@pytest.mark.parametrize("penalty", sorted(PENALTY_POINTS))
# the ResNet's cases take about 2.3 s each, 28 s in all: they run in the whole suite, and the
# fast subset keeps the DCGAN's, which cross the same norms' layers
@pytest.mark.parametrize("arch", [pytest.param(a, marks=pytest.mark.slow) if a == "resnet"
                                  else a for a in ARCHS])
@pytest.mark.parametrize("norm", NORMS)
def test_the_penalty_gradient_through_every_layer_kind_is_the_finite_difference(
        arch, norm, penalty):
    """The penalty differentiates D's input gradient (a double backward); its gradient with
    respect to D's parameters against central finite differences, in float64, through strict
    and affine WN, TPReLU and WN addition (wn, ResNet), BN, layer norm and spectral norm."""
    D = tiny_discriminator(arch, norm)
    if norm == "sn":
        D.eval()  # spectral norm's power iteration moves in training mode: F not a function
    real, fake = torch.rand(2, 3, 3, 8, 8, dtype=torch.float64)
    checked = one_parameter_per_layer_kind(D)
    params = dict(D.named_parameters())

    def penalised(*values):
        def critic(x):
            return torch.func.functional_call(D, {**params, **dict(zip(checked, values))}, x)
        return Penalty(penalty, 10.0)(critic, real, fake, uniform_from(1))

    values = tuple(params[n].detach().clone().requires_grad_(True) for n in checked)
    assert torch.autograd.gradcheck(penalised, values, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_no_penalty_adds_nothing_and_draws_nothing():
    penalty = Penalty("none")
    assert not penalty and Penalty("wgan_gp", 10.0)


@pytest.mark.slow
def test_a_wgan_gp_run_trains_on_the_digits(tmp_path):
    run = train_run(compose_config(tmp_path, "loss=wasserstein", "penalty=wgan_gp",
                                   "train.iters=20", "recon.every=10"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["iters_done"] == 20
    rows = numbers(run)  # iter, d_loss, g_loss, d_real, d_fake
    assert torch.isfinite(rows).all()
    # a critic's scores, not probabilities: they leave [0, 1] at some point
    assert ((rows[:, 3:] < 0) | (rows[:, 3:] > 1)).any()
    # D's loss carries the penalty: without it, a critic's loss is d_fake - d_real
    assert (rows[:, 1] - (rows[:, 4] - rows[:, 3])).abs().max() > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("loss, penalty", [("hinge", "dragan"), ("least_squares", "wgan_gp")])
def test_a_penalised_run_resumes_to_its_uninterrupted_losses(tmp_path, loss, penalty):
    """The penalty's random points come from the run's code generator, which checkpoints
    keep: a resumed run draws the points an uninterrupted one draws."""
    settings = [f"loss={loss}", f"penalty={penalty}", "train.iters=6"]
    straight = train_run(compose_config(tmp_path, *settings, f"run_dir={tmp_path}/straight"))
    cfg = compose_config(tmp_path, *settings, f"run_dir={tmp_path}/resumed")
    with pytest.raises(RuntimeError):
        train_run(cfg, callbacks=[CrashAt(5)])
    resumed = train_run(cfg)
    assert torch.equal(numbers(resumed), numbers(straight))


def test_a_penalty_weight_without_a_penalty_or_a_penalty_without_one_is_one_line(
        tmp_path, monkeypatch, capsys):
    said = run_gansweep(monkeypatch, capsys, tmp_path, "penalty.weight=5", code=1)
    assert "Could not override 'penalty.weight'" in said  # Hydra's line: none has no weight
    said = run_gansweep(monkeypatch, capsys, tmp_path, "+penalty.weight=5", code=1)
    assert "penalty.weight=5 with penalty=none: there is no penalty to weigh" in said
    said = run_gansweep(monkeypatch, capsys, tmp_path, "penalty=dragan", "penalty.weight=0",
                        code=1)
    assert "penalty.weight=0: must be a positive number" in said
    said = run_gansweep(monkeypatch, capsys, tmp_path, "penalty=dragan", "penalty.weight=null",
                        code=1)
    assert "penalty=dragan needs penalty.weight" in said
    said = run_gansweep(monkeypatch, capsys, tmp_path, "loss=wgan", code=1)
    assert "loss" in said and "Traceback" not in said
