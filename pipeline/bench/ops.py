"""How many ATen compute operations a call dispatches: on a GPU each is at least one kernel launch.

A GPU's per-launch cost (several µs of host and driver time) is what makes many small steps slow
there whatever their FLOPs, so the count per image is the figure that says whether batching pays.
Views and other metadata-only operations launch nothing and are not counted.
"""
from __future__ import annotations

from collections.abc import Callable

from torch.utils._python_dispatch import TorchDispatchMode


class _OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += not _is_view(func)
        return func(*args, **(kwargs or {}))


def _is_view(func) -> bool:
    """Whether the op only makes a view (aliases its input; no data is touched)."""
    schema = func._schema
    return bool(schema.returns) and all(r.alias_info is not None and not r.alias_info.is_write for r in schema.returns)


def count_ops(fn: Callable[[], object]) -> int:
    """ATen compute ops dispatched by one `fn()` call."""
    with _OpCounter() as counter:
        fn()
    return counter.count
