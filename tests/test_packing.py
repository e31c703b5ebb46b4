"""A packed network (gansweep/training/stacking.py) computes what its K copies compute apart."""

import pytest
import torch
from conftest import ARCHS, NORMS, compose_config
from hydra.utils import instantiate

from gansweep.training.gan import GAN
from gansweep.training.packed import PackedGAN
from gansweep.training.stacking import Packed

K, BATCH, SIZE = 3, 4, 16
LR = 1e-3


def copies(tmp_path, arch, norm, which):
    """K copies of the tiny G or D of `arch`, each initialised from a seed of its own."""
    cfg = compose_config(tmp_path, f"arch={arch}", f"norm={norm}")
    nets = []
    for seed in range(K):
        torch.manual_seed(seed)
        nets.append(instantiate(cfg.arch[which], norm=norm, image_size=SIZE, channels=3))
    return nets


def inputs(nets, which):
    torch.manual_seed(100)
    if which == "generator":
        return torch.randn(K, BATCH, nets[0].code_dim)
    return torch.rand(K, BATCH, 3, SIZE, SIZE)


def close(a, b):
    return torch.allclose(a, b, rtol=1e-5, atol=1e-6 * max(1.0, b.abs().max().item()))


@pytest.mark.parametrize("which", ["generator", "discriminator"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("norm", [n for n in NORMS if n != "sn"])
@pytest.mark.parametrize("arch", ARCHS)
def test_packed_forward_and_backward_equal_the_copies_apart(tmp_path, arch, norm, training,
                                                           which):
    nets = copies(tmp_path, arch, norm, which)
    packed = Packed(nets)
    for net in [*nets, packed]:
        net.train(training)
    x = inputs(nets, which)
    weights = torch.randn(K, BATCH, *([] if which == "discriminator" else [3, SIZE, SIZE]))

    out = packed(x)
    apart = torch.stack([net(x[k]) for k, net in enumerate(nets)])
    assert close(out, apart)

    (out * weights).sum().backward()
    (apart * weights).sum().backward()
    params, buffers = packed.stacked()
    for name, value in params.items():
        grads = torch.stack([dict(net.named_parameters())[name].grad for net in nets])
        assert close(value.grad, grads), name
    for name, value in buffers.items():  # BatchNorm's running statistics, in training
        assert close(value.float(), torch.stack([dict(net.named_buffers())[name]
                                                 for net in nets]).float()), name


@pytest.mark.parametrize("arch", ARCHS)
def test_a_copy_state_is_the_unpacked_networks_state_dict(tmp_path, arch):
    nets = copies(tmp_path, arch, "bn", "generator")
    packed = Packed(nets)
    for k, net in enumerate(nets):
        state = packed.copy_state(k)
        assert state.keys() == net.state_dict().keys()
        assert all(torch.equal(state[n], v) for n, v in net.state_dict().items())
    packed.load_copy_state(0, nets[2].state_dict())
    assert all(torch.equal(packed.copy_state(0)[n], v) for n, v in nets[2].state_dict().items())
    assert all(torch.equal(packed.copy_state(1)[n], v) for n, v in nets[1].state_dict().items())


def test_rmsprop_over_packed_parameters_steps_each_copy_as_its_own_would(tmp_path):
    # In float64: in float32 the rounding of grouped vs single convolutions can flip the
    # sign of a near-zero gradient, and RMSProp's first steps are about lr * sign(gradient),
    # so an element may move a whole step apart (by how much depends on the CPU's kernels)
    nets = [net.double() for net in copies(tmp_path, "dcgan", "wn", "discriminator")]
    packed = Packed(nets)
    x = inputs(nets, "discriminator").double()
    make = lambda params: torch.optim.RMSprop(params, lr=LR, alpha=0.9, eps=1e-6)  # noqa: E731
    together, apart = make(packed.parameters()), [make(net.parameters()) for net in nets]
    for _ in range(3):
        packed(x).square().sum().backward()
        together.step()
        together.zero_grad()
        for k, (net, opt) in enumerate(zip(nets, apart)):
            net(x[k]).square().sum().backward()
            opt.step()
            opt.zero_grad()
    for k, net in enumerate(nets):
        state = packed.copy_state(k)
        for name, value in net.state_dict().items():
            assert torch.allclose(state[name], value, rtol=1e-9, atol=1e-6 * LR), name


@pytest.mark.parametrize("packed", [False, True], ids=["alone", "packed"])
def test_each_optimiser_step_clamps_the_tprelu_slopes_into_the_unit_interval(tmp_path, packed):
    """The paper keeps TPReLU's slope in [0, 1] by clamping it after every step; both
    optimisers of a run (and of packed copies, on the stacked slopes) do."""
    m = compose_config(tmp_path, "norm=wn").model
    shape = {"arch": m.arch, "norm": "wn", "image_size": m.image_size,
             "channels": m.channels, "optimizer": m.optimizer}
    gan = PackedGAN(**shape, seeds=[0, 1]) if packed else GAN(**shape)
    for optimizer, network in zip(gan.configure_optimizers(),
                                  (gan.discriminator, gan.generator)):
        slopes = gan.slopes_of(network)
        assert slopes and all(any(s is p for p in network.parameters()) for s in slopes)
        with torch.no_grad():
            for s in slopes:
                s.copy_(torch.linspace(-2.0, 3.0, s.numel()).view_as(s))
        optimizer.step()  # no gradients: only the hook changes anything
        assert all(s.min() == 0.0 and s.max() == 1.0 for s in slopes)
