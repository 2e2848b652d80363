"""The checksum a model directory records for each frozen component's weights."""


from __future__ import annotations

import hashlib
from typing import Mapping, Union

import torch


def weights_checksum(weights: Union[torch.nn.Module, Mapping[str, torch.Tensor]]) -> str:
    """sha256 over sorted names, dtypes, shapes and raw tensor bytes (a module's state_dict)."""
    state = weights.state_dict() if isinstance(weights, torch.nn.Module) else weights
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # bytes of any dtype, bf16 too
    return digest.hexdigest()
