"""Stopping a label job on SIGTERM or SIGINT without losing work (docs/operations.md, "Preemption and requeue").

SLURM sends SIGTERM before it kills a job (time limit, scancel, preemption), Kubernetes when it
deletes a RayJob, a terminal SIGINT on Ctrl-C. The first such signal asks the job to stop: the pool
hands out no more shards and waits up to ray.stop_grace_s for the ones its actors are labeling. A
second signal, or the grace running out, stops it at once. Either way the driver writes the
summary, and a rerun labels exactly the shards without a done-marker (docs/design.md, fault model).
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """Whether, since when and by which signal the job was asked to stop."""

    def __init__(self, grace_s: float = 0.0):
        self.grace_s = grace_s
        self.signal_name = ""  # the first stop signal received ("" while none)
        self.signals = 0
        self._since = 0.0
        self._previous: dict = {}
        self._announced = False

    @property
    def requested(self) -> bool:
        return self.signals > 0

    @property
    def overdue(self) -> bool:
        """Stop now: a second signal came, or the grace after the first ran out."""
        return self.signals > 1 or (self.requested and time.monotonic() - self._since >= self.grace_s)

    def receive(self, signum: int, frame=None) -> None:
        self.signals += 1
        if self.signals == 1:
            self.signal_name, self._since = signal.Signals(signum).name, time.monotonic()
        else:  # a third signal gets the handler that was there before the job (a way out if anything hangs)
            self._restore()

    def announce(self, labeling: int, labeled: int) -> None:
        """One line, once, when the pool starts winding down."""
        if not self._announced:
            self._announced = True
            print(f"nerve: {self.signal_name} received: no more shards are handed out; waiting up to "
                  f"{self.grace_s:g} s for the {labeling} being labeled ({labeled} labeled by this run so far; "
                  f"another signal stops at once)", file=sys.stderr, flush=True)

    @contextmanager
    def handling(self):
        """SIGTERM and SIGINT ask this request to stop for the duration of the block; the previous
        handlers come back after it. Signals reach only the main thread, so elsewhere this does nothing."""
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self.receive) for s in STOP_SIGNALS}
        try:
            yield self
        finally:
            self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
