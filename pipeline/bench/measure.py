"""Wall time and peak memory of one call, on CPU or CUDA.

Peak memory, CUDA: the caching allocator's peak above what was allocated before the call
(`torch.cuda.max_memory_allocated`). CPU: tracemalloc cannot see torch's allocations, so the
process's resident set size is sampled every millisecond from /proc/self/statm and the peak above
the starting RSS is reported. glibc serves mid-sized blocks from a heap it keeps after a free,
which would hide later peaks; the probe therefore pins glibc's mmap threshold at 128 KiB so every
tensor of interest is its own mapping, returned to the OS when freed.
"""
from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

import torch

_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter number
_MMAP_THRESHOLD_BYTES = 128 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


def _pin_mmap_threshold() -> bool:
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


class _RssSampler:
    """Background thread recording the highest RSS seen while it runs."""

    def __init__(self, interval: float = 1e-3):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(self.interval)

    def __enter__(self):
        self.peak = _rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    """(wall seconds, result) of `fn()`, with the device's queued work included."""
    device = torch.device(device)
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return time.perf_counter() - start, result


def peak_memory(fn: Callable[[], object], device: torch.device) -> tuple[int | None, str]:
    """(peak bytes above the starting point, how it was measured) of one `fn()` call.

    Run it apart from the timed calls: the CPU sampler thread competes for the GIL.
    """
    device = torch.device(device)
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base), "cuda_allocator_peak"
    if not os.path.exists("/proc/self/statm"):
        return None, "unavailable"
    method = "rss_sampled_1ms" + ("" if _pin_mmap_threshold() else "_glibc_heap_unpinned")
    base = _rss_bytes()
    with _RssSampler() as sampler:
        fn()
    return max(0, sampler.peak - base), method


def module_bytes(modules) -> int:
    """Bytes of the parameters and buffers of `modules`, each tensor counted once."""
    seen, total = set(), 0
    for module in modules:
        for tensor in (*module.parameters(), *module.buffers()):
            if tensor.data_ptr() not in seen:
                seen.add(tensor.data_ptr())
                total += tensor.numel() * tensor.element_size()
    return total


@contextmanager
def torch_threads(threads: int):
    """Run with `threads` CPU threads for torch (0: leave the setting alone); restore it afterwards."""
    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
