"""One try of one shard on the pool (pipeline/run/pool.py), and which queued try goes next."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass
class Attempt:
    url: str
    shard: str
    attempt: int  # tries so far (names this try in its stats and progress counts)
    charged: int = 0  # failed tries that count against ray.max_retries
    first: bool = False  # must be the first shard of its actor (it was ahead on an actor that died)
    slot: int = -1
    actor: object = None
    ref: object = None
    started: float = 0.0  # when it became its actor's first shard (monotonic)

    def next_try(self, charged: bool, first: bool = False) -> Attempt:
        return Attempt(self.url, self.shard, self.attempt + 1, self.charged + charged, first)


def take_next(queue: deque, ahead: bool) -> Attempt | None:
    """The next queued attempt for an actor with no shard, or to hand over `ahead` of a running one.
    Nothing goes ahead while the head of the queue must be first on its actor: the next actor to
    finish its shard takes it, rather than it waiting behind every other shard."""
    if not queue or (ahead and queue[0].first):
        return None
    return queue.popleft()
