"""Run a batch; when it fails, split it in halves and retry each, down to single items.

An engine error on a batch (out of memory on a batch of large images, one image that trips a
kernel) should cost only the images that fail on their own: bisection finds them in O(f log n)
extra runs for f failing items, and every item that works alone or in a smaller batch is kept.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence


def _release_cached_memory() -> None:
    """After a CUDA out-of-memory error the allocator's cache holds the failed batch's blocks."""
    try:
        import torch
    except ImportError:  # the pipeline never needs torch for anything else here
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_bisecting(run: Callable[[list], list], items: Sequence) -> list:
    """[run's result or "ExcType: message" error string] per item, in order.

    `run(batch)` returns one result per item of `batch` or raises; a raising batch of more than
    one item is split in two and each half retried the same way.
    """
    items = list(items)
    if not items:
        return []
    try:
        results = list(run(items))
        if len(results) != len(items):
            raise RuntimeError(f"{len(results)} results for a batch of {len(items)}")
        return results
    except Exception as exc:
        _release_cached_memory()
        if len(items) == 1:
            return [f"{type(exc).__name__}: {exc}"]
    half = len(items) // 2
    return run_bisecting(run, items[:half]) + run_bisecting(run, items[half:])
