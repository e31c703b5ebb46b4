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
from typing import Sequence

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
        for name, value in params.items():
            self.register_parameter(_flat(name), nn.Parameter(value.detach().clone()))
        for name, value in buffers.items():
            self.register_buffer(_flat(name), value.clone())
        # The definition the copies share, without storage of its own. In a list, not an
        # attribute: it is not a submodule (its meta tensors stay out of state_dict and .to).
        self._definition = [copy.deepcopy(nets[0]).to("meta")]

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

    def copy_state(self, k: int) -> dict[str, torch.Tensor]:
        """Copy k's state_dict, keyed as the unpacked network's (its checkpoints load it)."""
        params, buffers = self.stacked()
        return {name: value[k].detach().clone() for name, value in {**params, **buffers}.items()}

    @torch.no_grad()
    def load_copy_state(self, k: int, state: dict[str, torch.Tensor]) -> None:
        """Sets copy k from an unpacked network's state_dict."""
        params, buffers = self.stacked()
        wanted = {**params, **buffers}
        if set(state) != set(wanted):
            raise KeyError(f"state_dict keys differ from the packed network's: "
                           f"{sorted(set(state) ^ set(wanted))}")
        for name, value in wanted.items():
            value[k].copy_(state[name])
