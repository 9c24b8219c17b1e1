"""How long each actor was labeling: the union of its shards' [started_at, finished_at] spans.

Shards handed over early (ray.shards_ahead) overlap the one before them, so summing their spans
would count the overlap twice; the union counts each second an actor had work once. Engine builds
come before a shard's start and are left out.
"""
from __future__ import annotations

from collections import defaultdict

from pipeline.output.shard_stats import ShardStats


def by_actor(stats: list[ShardStats]) -> list[list[ShardStats]]:
    """Each actor's shard stats, in the order they finished."""
    shards: dict[int, list[ShardStats]] = defaultdict(list)
    for s in stats:
        shards[s.actor_pid].append(s)
    return [sorted(group, key=lambda s: s.finished_at) for group in shards.values()]


def busy_seconds(stats: list[ShardStats]) -> dict[int, float]:
    """{actor pid: seconds during which it held at least one shard}."""
    return {group[0].actor_pid: _union_length(sorted(s.span() for s in group)) for group in by_actor(stats)}


def _union_length(intervals: list[tuple[float, float]]) -> float:
    total, reach = 0.0, float("-inf")
    for start, end in intervals:
        start = max(start, reach)
        if end > start:
            total += end - start
            reach = end
    return total
