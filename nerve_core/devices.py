"""Turn the config's device and dtype strings into torch objects, failing early and clearly.

A wrong device or dtype otherwise surfaces deep inside a model forward as an opaque kernel error.
torch is imported only where a name is resolved, so that the driver checks a name in no time.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from nerve_core.errors import ConfigError

if TYPE_CHECKING:
    import torch

_DTYPES = ("float32", "float16", "bfloat16")
DEVICE_NAMES = "auto | cpu | cuda | cuda:N"
_DEVICE_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_name(name: str) -> str:
    """`name` if it is one of auto, cpu, cuda, cuda:N; else a ConfigError. Only the spelling is
    checked, so that the driver can refuse `gpu` before any work while the device itself is
    looked for where the engine runs."""
    if not isinstance(name, str) or not _DEVICE_NAME.fullmatch(name):
        raise ConfigError(f"engine.device={name!r} is not a device name: use {DEVICE_NAMES}")
    return name


def resolve_device(name: str) -> torch.device:
    """Map auto to cuda when available, else cpu; check that a named cuda/cuda:N exists."""
    import torch

    if check_device_name(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} was asked for but CUDA is not available on this machine; "
                              "use device=cpu or device=auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """Map auto to float16 on CUDA and float32 on CPU. An explicit float16 on CPU runs, slowly: it is
    there to check the GPU's precision on a machine without one (tests/test_precision.py)."""
    import torch

    device = torch.device(device)
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if name not in _DTYPES:
        raise ConfigError(f"unknown dtype {name!r}: use auto, {', '.join(_DTYPES)}")
    return getattr(torch, name)
