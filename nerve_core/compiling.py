"""Opt-in torch.compile of the engine's models (`EngineConfig.compile`).

Compiling changes how the models run, not what they compute: modules are compiled in place with
`nn.Module.compile` (parameters and state dict untouched) and functions are wrapped, so the
loaders, the weights and the eager code path stay exactly as they are.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from nerve_core.errors import ConfigError

COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")  # none, then torch.compile modes


def check_compile_mode(mode: str) -> str:
    """`mode` if it is one of COMPILE_MODES, else a ConfigError that lists them."""
    if mode not in COMPILE_MODES:
        raise ConfigError(f"unknown engine.compile {mode!r}; expected one of {', '.join(COMPILE_MODES)}")
    return mode


def compile_module(module: nn.Module, mode: str) -> None:
    """Compile the module's forward in place (nothing for mode none)."""
    if check_compile_mode(mode) != "none":
        module.compile(mode=mode)


def compile_function(fn: Callable, mode: str) -> Callable:
    """`fn` compiled with torch.compile, or `fn` itself for mode none."""
    if check_compile_mode(mode) == "none":
        return fn
    return torch.compile(fn, mode=mode)
