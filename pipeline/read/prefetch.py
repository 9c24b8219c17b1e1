"""Ordered, bounded read-ahead: map a function over an iterator in background threads.

The labeler uses it so that tar reading, image decoding and the engine's CPU resizes run while the
engine works on the previous batch; the readers of a whole run (verify, score, export, the report)
read SHARD_READERS shards at a time through `read_ahead`, since an object store answers requests
in parallel and one serial request per shard is hours at a million shards. Results come back in input order; at most `lookahead` items are
decoded ahead, which bounds memory on shards of large images. An exception raised by the source
iterator itself reaches the consumer, after every item before it, as `SourceError` (so that a
failing input is told apart from a failing `fn`).
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

_END = object()
SHARD_READERS = 8  # shards a reader of a whole run has in flight (each whole in memory: a few, not hundreds)


class SourceError(RuntimeError):
    """The source iterator raised; `__cause__` is what it raised."""


class _SourceFailed:
    def __init__(self, exc: BaseException):
        self.exc = exc


class PrefetchMap:
    """Iterating yields fn(x) for x in source, in order, computed ahead in `threads` worker threads;
    `ready()` says how many results are computed and waiting meanwhile."""

    def __init__(self, fn: Callable, source: Iterable, threads: int = 1, lookahead: int = 8):
        self.fn, self.source, self.threads = fn, source, max(1, threads)
        self.pending: queue.Queue = queue.Queue(maxsize=max(1, lookahead))

    def ready(self) -> int:
        with self.pending.mutex:  # a snapshot: the reader thread appends meanwhile
            waiting = list(self.pending.queue)
        return sum(1 for item in waiting if isinstance(item, Future) and item.done())

    def __iter__(self) -> Iterator:
        pending, fn = self.pending, self.fn
        stop = threading.Event()
        executor = ThreadPoolExecutor(self.threads, thread_name_prefix="decode")

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    pending.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce():
            try:
                for item in self.source:
                    if not put(executor.submit(fn, item)):
                        return
                put(_END)
            except BaseException as exc:  # handed to the consumer, which decides
                put(_SourceFailed(exc))

        reader = threading.Thread(target=produce, name="shard-reader", daemon=True)
        reader.start()
        try:
            while True:
                item = pending.get()
                if item is _END:
                    return
                if isinstance(item, _SourceFailed):
                    raise SourceError(f"{type(item.exc).__name__}: {item.exc}") from item.exc
                yield item.result()
        finally:
            stop.set()
            reader.join(timeout=5)
            executor.shutdown(wait=False, cancel_futures=True)


def read_ahead(read: Callable, shards: Iterable) -> PrefetchMap:
    """read(shard) for each of `shards`, in order, SHARD_READERS at a time."""
    return PrefetchMap(read, shards, threads=SHARD_READERS, lookahead=SHARD_READERS)
