"""K networks of one shape, run as one: a packed network.

Each copy keeps its own parameters and buffers, stacked along a new first dimension
(`torch.func.stack_module_state`), and one definition of the network runs over all of them
(`torch.func.vmap` of `torch.func.functional_call`): the input is (K, B, ...), copy k sees
slice k and nothing else. vmap turns the K convolutions of a layer into one grouped
convolution, the K matrix products into one batched product, BatchNorm normalises and
tracks each copy's slice apart. An optimiser whose update is per element (RMSProp, Adam,
SGD without weight sharing) over the stacked parameters updates each copy as its own
optimiser would. So the architectures stay as they are: packing is a transform of a built
network, not a second copy of it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


def _flat(name: str) -> str:
    return name.replace(".", "__")  # module attribute names may not contain dots


class Packed(nn.Module):
    """`len(nets)` copies of one network: (K, B, ...) -> (K, B, ...)."""

    def __init__(self, nets: Sequence[nn.Module]):
        super().__init__()
        nets = list(nets)
        params, buffers = stack_module_state(nets)
        self.copies = len(nets)
        self._param_names, self._buffer_names = list(params), list(buffers)
        saved = set(nets[0].state_dict())  # non-persistent buffers (constants) stay unsaved
        self.saved_names = [name for name in [*params, *buffers] if name in saved]
        for name, value in params.items():
            self.register_parameter(_flat(name), nn.Parameter(value.detach().clone()))
        for name, value in buffers.items():
            self.register_buffer(_flat(name), value.clone(), persistent=name in saved)
        # The definition the copies share, without storage of its own. In a list, not an
        # attribute: it is not a submodule (its meta tensors stay out of state_dict and .to).
        self._definition = [copy.deepcopy(nets[0]).to("meta")]
        _set_fused(self.definition, False)  # fused ops without a vmap batching rule

    @property
    def definition(self) -> nn.Module:
        """The network's definition (attributes such as `code_dim`; its tensors are meta)."""
        return self._definition[0]

    def stacked(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """{name as in the unpacked network: (K, ...) tensor}, for parameters and buffers."""
        return ({name: getattr(self, _flat(name)) for name in self._param_names},
                {name: getattr(self, _flat(name)) for name in self._buffer_names})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        definition = self.definition
        definition.train(self.training)  # BatchNorm: batch or running statistics

        def one_copy(params, buffers, x):
            return functional_call(definition, (params, buffers), (x,))

        return vmap(one_copy, randomness="different")(*self.stacked(), x)

    def _saved(self) -> dict[str, torch.Tensor]:
        params, buffers = self.stacked()
        every = {**params, **buffers}
        return {name: every[name] for name in self.saved_names}

    @torch.no_grad()
    def copy_network(self, k: int) -> nn.Module:
        """Copy k as a network of its own (its parameters and every buffer, constants
        included), on the packed one's device and in its precision."""
        like = next(self.parameters())
        network = copy.deepcopy(self.definition).to_empty(device=like.device).to(like.dtype)
        _set_fused(network, True)
        params, buffers = self.stacked()
        own = {**dict(network.named_parameters()), **dict(network.named_buffers())}
        for name, value in {**params, **buffers}.items():
            own[name].copy_(value[k])
        return network

    def copy_state(self, k: int) -> dict[str, torch.Tensor]:
        """Copy k's state_dict, keyed as the unpacked network's (its checkpoints load it)."""
        return {name: value[k].detach().clone() for name, value in self._saved().items()}

    @torch.no_grad()
    def load_copy_state(self, k: int, state: dict[str, torch.Tensor]) -> None:
        """Sets copy k from an unpacked network's state_dict."""
        wanted = self._saved()
        if set(state) != set(wanted):
            raise KeyError(f"state_dict keys differ from the packed network's: "
                           f"{sorted(set(state) ^ set(wanted))}")
        for name, value in wanted.items():
            value[k].copy_(state[name])


def _set_fused(network: nn.Module, fused: bool) -> None:
    """Layers with a fused op (`layers.normalised`) use it, or its plain-op spelling."""
    for module in network.modules():
        if hasattr(module, "fused"):
            module.fused = fused


# --- Checkpoints: a packed job's, and each of its copies' -----------------------------------
# Pure functions of checkpoint dicts (as Lightning's `trainer.save_checkpoint` makes them and
# `torch.load` reads them back), so that what a copy's checkpoint holds can be tested without
# training. `names` maps each unpacked state_dict key to the packed one (`state_names`).

SEED_CALLBACKS = "EachSeed"  # the packed checkpoint's key for its copies' callback states


def state_names(nets: dict[str, Packed]) -> dict[str, str]:
    """{unpacked state_dict key: packed state_dict key} of the packed `nets`, keyed by their
    attribute name in the module (e.g. {"generator": G, "discriminator": D})."""
    names = {}
    for prefix, packed in nets.items():
        names.update({f"{prefix}.{n}": f"{prefix}.{_flat(n)}" for n in packed.saved_names})
    return names


def slice_optimizer_state(state: dict, k: int) -> dict:
    """Copy k's part of an optimiser state over stacked parameters (scalars, such as a step
    count, are the same for every copy)."""
    per_param = {i: {key: v[k].clone() if torch.is_tensor(v) and v.dim() else v
                     for key, v in s.items()} for i, s in state["state"].items()}
    return {"state": per_param, "param_groups": copy.deepcopy(state["param_groups"])}


def stack_optimizer_states(states: list[dict]) -> dict:
    """The optimiser state over stacked parameters whose copy k is `states[k]`."""
    first = states[0]
    per_param = {i: {key: torch.stack([s["state"][i][key] for s in states])
                     if torch.is_tensor(v) and v.dim() else v for key, v in entry.items()}
                 for i, entry in first["state"].items()}
    return {"state": per_param, "param_groups": copy.deepcopy(first["param_groups"])}


def unpack_checkpoint(packed: dict, k: int, names: dict[str, str]) -> dict:
    """Copy k's checkpoint, as its run alone writes it, from the packed job's: its weights,
    optimiser states, seed, GAN state ("gansweep") and callback states."""
    state = packed["gansweep"]
    hyper = {key: v for key, v in packed["hyper_parameters"].items() if key != "seeds"}
    callbacks = packed["callbacks"].get(SEED_CALLBACKS, {}).get("seeds")
    return {**packed,
            "state_dict": {name: packed["state_dict"][key][k].clone()
                           for name, key in names.items()},
            "optimizer_states": [slice_optimizer_state(s, k)
                                 for s in packed["optimizer_states"]],
            "hyper_parameters": {**hyper, "seed": state["seeds"][k]},
            "gansweep": {"iteration": state["iteration"], "code_rng": state["code_rng"][k],
                         "diverged_at": state["diverged_at"][k]},
            "callbacks": callbacks[k] if callbacks else {}}


def pack_checkpoints(checkpoints: list[dict], names: dict[str, str]) -> dict:
    """The packed job's checkpoint from its copies' (all at one iteration, in copy order):
    `unpack_checkpoint`'s inverse."""
    first = checkpoints[0]
    seeds = [c["hyper_parameters"]["seed"] for c in checkpoints]
    hyper = {key: v for key, v in first["hyper_parameters"].items() if key != "seed"}
    return {**first,
            "state_dict": {key: torch.stack([c["state_dict"][name] for c in checkpoints])
                           for name, key in names.items()},
            "optimizer_states": [stack_optimizer_states([c["optimizer_states"][i]
                                                         for c in checkpoints])
                                 for i in range(len(first["optimizer_states"]))],
            "hyper_parameters": {**hyper, "seeds": seeds},
            "gansweep": {"iteration": first["gansweep"]["iteration"], "seeds": seeds,
                         "code_rng": [c["gansweep"]["code_rng"] for c in checkpoints],
                         "diverged_at": [c["gansweep"].get("diverged_at")
                                         for c in checkpoints]},
            "callbacks": {SEED_CALLBACKS: {"seeds": [c.get("callbacks", {})
                                                     for c in checkpoints]}}}
