"""Where a role computes: its GPU when the actor sees CUDA, else the CPU; tensors built on its model's
device; bf16 autocast of the model's device type.

Ray sets CUDA_VISIBLE_DEVICES to the GPUs an actor was placed on, so `cuda` (the current device) is
the role's GPU. torch is imported lazily, so the module imports anywhere.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, ContextManager

if TYPE_CHECKING:
    import torch

AUTOCAST_DEVICE_TYPES = ("cpu", "cuda")    # device types with a bf16 autocast; others run without one


def role_device() -> "torch.device":
    """The device a role's model lives on: the actor's GPU if it sees CUDA, else the CPU."""
    import torch
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def model_device(model: Any) -> "torch.device":
    """The device of `model`'s parameters (an nn.Module, a DeepSpeed engine or a PEFT model); an
    object without parameters answers with its `device` attribute."""
    import torch
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device(getattr(model, "device", "cpu"))


def autocast(device: "torch.device", enabled: bool) -> ContextManager:
    """bf16 autocast of `device`'s type when `enabled`; no autocast on a device type without one."""
    import torch
    if not enabled or device.type not in AUTOCAST_DEVICE_TYPES:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
