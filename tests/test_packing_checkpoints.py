"""Packing and unpacking checkpoints (gansweep/training/stacking.py): pure functions of dicts,
tested on checkpoints made by hand, nothing trained."""

import torch
from torch import nn

from gansweep.training.stacking import (
    SEED_CALLBACKS,
    Packed,
    pack_checkpoints,
    slice_optimizer_state,
    stack_optimizer_states,
    state_names,
    unpack_checkpoint,
)

K = 3


def nets() -> list[nn.Module]:
    out = []
    for seed in range(K):
        torch.manual_seed(seed)
        out.append(nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 2)))
    return out


def optimizer_state(seed: int, n_params: int) -> dict:
    """What RMSProp's state_dict holds: a step count per parameter and a tensor per element."""
    g = torch.Generator().manual_seed(seed)
    return {"state": {i: {"step": torch.tensor(7.0), "square_avg": torch.rand(3, 2, generator=g)}
                      for i in range(n_params)},
            "param_groups": [{"lr": 1e-4, "alpha": 0.99, "params": list(range(n_params))}]}


def seed_checkpoint(net: nn.Module, seed: int) -> dict:
    """A checkpoint as a run alone writes it (the keys gansweep and Lightning put in)."""
    return {"epoch": 0, "global_step": 8, "pytorch-lightning_version": "2.6",
            "state_dict": {f"generator.{n}": v.clone() for n, v in net.state_dict().items()},
            "optimizer_states": [optimizer_state(seed, 2), optimizer_state(seed + 100, 2)],
            "hyper_parameters": {"norm": "bn", "seed": seed},
            "gansweep": {"iteration": 4, "code_rng": torch.tensor([seed], dtype=torch.uint8),
                         "diverged_at": None if seed != 2 else 3},
            "callbacks": {"RunningRecon": {"best_loss": 0.1 * seed, "best_iter": 3}},
            "loops": {"fit_loop": {"batches": 4}}}


def names_of(copies: list[nn.Module]) -> dict[str, str]:
    return state_names({"generator": Packed(copies)})


def same(a, b) -> bool:
    """Equal nested dicts/lists of tensors and plain values."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(same, a, b))
    if torch.is_tensor(a):
        return torch.is_tensor(b) and a.shape == b.shape and torch.equal(a, b)
    return a == b


def test_names_map_each_unpacked_key_to_the_packed_modules_own():
    copies = nets()
    packed = Packed(copies)
    names = state_names({"generator": packed})
    assert set(names) == {f"generator.{n}" for n in copies[0].state_dict()}
    packed_keys = {f"generator.{n}" for n in packed.state_dict()}
    assert set(names.values()) == packed_keys


def test_packing_the_seeds_checkpoints_then_unpacking_gives_each_back():
    copies = nets()
    names = names_of(copies)
    checkpoints = [seed_checkpoint(net, seed) for seed, net in enumerate(copies)]
    packed = pack_checkpoints(checkpoints, names)
    assert packed["hyper_parameters"] == {"norm": "bn", "seeds": [0, 1, 2]}
    assert packed["gansweep"]["diverged_at"] == [None, None, 3]
    for k, checkpoint in enumerate(checkpoints):
        assert same(unpack_checkpoint(packed, k, names), checkpoint), k


def test_a_packed_state_dict_is_the_packed_modules_and_unpacks_to_each_copys():
    copies = nets()
    module = Packed(copies)
    names = state_names({"generator": module})
    packed = pack_checkpoints([seed_checkpoint(n, s) for s, n in enumerate(copies)], names)
    mine = {f"generator.{n}": v for n, v in module.state_dict().items()}
    assert same(packed["state_dict"], mine)
    for k, net in enumerate(copies):
        unpacked = unpack_checkpoint(packed, k, names)["state_dict"]
        assert same(unpacked, {f"generator.{n}": v for n, v in net.state_dict().items()})


def test_an_unpacked_checkpoint_owns_its_tensors():
    copies = nets()
    names = names_of(copies)
    packed = pack_checkpoints([seed_checkpoint(n, s) for s, n in enumerate(copies)], names)
    one = unpack_checkpoint(packed, 1, names)
    for value in one["state_dict"].values():
        value.add_(1)  # a seed's checkpoint changed after the fact ...
    again = unpack_checkpoint(packed, 1, names)
    assert not same(one["state_dict"], again["state_dict"])  # ... leaves the packed one be


def test_optimizer_states_slice_per_element_and_keep_scalars():
    states = [optimizer_state(seed, 2) for seed in range(K)]
    stacked = stack_optimizer_states(states)
    assert stacked["state"][0]["square_avg"].shape == (K, 3, 2)
    assert torch.equal(stacked["state"][0]["step"], torch.tensor(7.0))  # one count for all
    for k, state in enumerate(states):
        assert same(slice_optimizer_state(stacked, k), state)
    stacked["param_groups"][0]["lr"] = 0.5  # the groups are copies, not shared
    assert states[0]["param_groups"][0]["lr"] == 1e-4


def test_a_seed_gets_its_own_callback_states_and_none_when_the_job_had_none():
    copies = nets()
    names = names_of(copies)
    packed = pack_checkpoints([seed_checkpoint(n, s) for s, n in enumerate(copies)], names)
    assert packed["callbacks"] == {SEED_CALLBACKS: {"seeds": [
        {"RunningRecon": {"best_loss": 0.1 * s, "best_iter": 3}} for s in range(K)]}}
    packed["callbacks"] = {}
    assert [unpack_checkpoint(packed, k, names)["callbacks"] for k in range(K)] == [{}] * K
