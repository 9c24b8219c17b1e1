"""One actor's engine shared by the shards it holds: the turn and each shard's batches in flight.

An actor labels its current shard while the next ones read ahead (ray.shards_ahead, docs/design.md
"The actor protocol"). Their batches all run on the actor's one engine thread, one shard's at a
time: a shard takes the turn at its first batch and gives it up when its last is queued, so the
next shard's first batch queues right behind it and the engine never waits for a shard to fill.
Pure threading: no torch, no Ray (tests/test_engine_turn.py drives it with a fake engine).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

ENCODE_BEHIND = 2  # batches a shard's encoder may lag its engine: one slow to encode does not stop the engine


class EngineTurn:
    """Calls `on_batch` once this shard holds the engine; holds it until the block ends.

    The turn is taken at the first batch, not at the start of the call, so that a shard handed
    over early reads and decodes its first batch while the shard before it still runs.
    """

    def __init__(self, lock: threading.Lock, on_batch):
        self.lock, self.on_batch, self.held = lock, on_batch, False
        self.waited = 0.0  # seconds spent waiting for the turn

    def __call__(self, batch) -> None:
        if not self.held:
            start = time.perf_counter()
            self.lock.acquire()
            self.held, self.waited = True, time.perf_counter() - start
        self.on_batch(batch)

    def __enter__(self) -> EngineTurn:
        return self

    def __exit__(self, *exc) -> None:
        if self.held:
            self.held = False
            self.lock.release()


class ShardBatches:
    """One shard's batches in flight: each runs on the actor's engine thread, then is recorded in
    this shard's encoder thread, in order.

    At most one of the shard's batches waits for the engine behind the one it runs, and at most
    ENCODE_BEHIND wait for the encoder (submitting waits), so decoded samples and label maps never
    pile up in memory. Leaving the context waits for every batch and re-raises the first error,
    if any.
    """

    def __init__(self, engine_thread: ThreadPoolExecutor):
        self._engine_thread = engine_thread
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode")
        self._at_engine: deque = deque()
        self._at_encoder: deque = deque()

    def engine(self, fn, *args) -> None:
        """Queue fn(*args) on the engine thread (called by the shard's thread, during its turn)."""
        while len(self._at_engine) > 1:
            self._at_engine.popleft().result()
        self._at_engine.append(self._engine_thread.submit(fn, *args))

    def encode(self, fn, *args) -> None:
        """Queue fn(*args) on the encoder thread (called by the engine thread)."""
        while len(self._at_encoder) >= ENCODE_BEHIND:
            self._at_encoder.popleft().result()
        self._at_encoder.append(self._encoder.submit(fn, *args))

    def _wait(self) -> None:
        for pending in (self._at_engine, self._at_encoder):  # engine first: its batches queue encodes
            while pending:
                pending.popleft().result()

    def __enter__(self) -> ShardBatches:
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                self._wait()
        finally:
            for future in self._at_engine:  # an error: this shard's batches not yet run are dropped
                future.cancel()
            while self._at_engine:  # one may be running: it must not encode after the encoder is gone
                pending = self._at_engine.popleft()
                if not pending.cancelled():
                    pending.exception()
            self._encoder.shutdown(wait=True)


def engine_thread() -> ThreadPoolExecutor:
    """An actor's one engine thread: every shard's batches run there, in the order their turns
    queue them, so the next shard's first batch waits in its queue, not behind a wake-up of the
    next shard's own thread."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
