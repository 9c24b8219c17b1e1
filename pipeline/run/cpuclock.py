"""CPU seconds per pipeline stage, from each thread's own CPU clock (time.thread_time).

A labeler's stages run in overlapping threads (tar reader, decode threads, engine, encoder) that wait
on one another, so their wall times say little about what each costs. The CPU time a thread spends
inside a stage does: summed over threads it is the stage's share of the cores, and the sum over
stages per image says how many images per second one host can feed a fast engine.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


class CpuClock:
    """Thread CPU seconds per stage name, safe to add to from any thread."""

    def __init__(self):
        self._seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()
        self.started = time.process_time()  # the process's CPU clock when this one started

    @contextmanager
    def stage(self, name: str):
        start = time.thread_time()
        try:
            yield
        finally:
            spent = time.thread_time() - start
            with self._lock:
                self._seconds[name] += spent

    def timed(self, items: Iterable, name: str) -> Iterator:
        """`items`, with the CPU time of producing each one counted under `name` (in whichever
        thread iterates)."""
        iterator = iter(items)
        while True:
            with self.stage(name):
                try:
                    item = next(iterator)
                except StopIteration:
                    return
            yield item

    def seconds(self, process: float | None = None) -> dict[str, float]:
        """Seconds per stage, plus `process`: the whole process's CPU time (every thread, Ray's own
        included), since the clock started unless the caller counted it otherwise."""
        with self._lock:
            out = dict(self._seconds)
        out["process"] = time.process_time() - self.started if process is None else process
        return out
