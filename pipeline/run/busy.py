"""How long each actor was labeling: the union of its shards' [started_at, finished_at] spans.

Shards handed over early (ray.shards_ahead) overlap the one before them, so summing their spans
would count the overlap twice; the union counts each second an actor had work once. Engine builds
come before a shard's start and are left out.
"""
from __future__ import annotations

import bisect
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


class BusySpans:
    """`busy_seconds` kept as shards finish, in memory that does not grow with the shards: each
    actor's spans merged into the few disjoint intervals they cover (an actor's shards follow one
    another, so a new span almost always joins the last interval)."""

    def __init__(self):
        self._intervals: dict[int, list[list[float]]] = defaultdict(list)  # actor pid -> disjoint [start, end], sorted

    def add(self, stats: ShardStats) -> None:
        start, end = stats.span()
        intervals = self._intervals[stats.actor_pid]
        i = bisect.bisect_left(intervals, [start, end])
        if i and intervals[i - 1][1] >= start:  # joins the interval before it
            i -= 1
            intervals[i][1] = max(intervals[i][1], end)
        else:
            intervals.insert(i, [start, end])
        while i + 1 < len(intervals) and intervals[i + 1][0] <= intervals[i][1]:  # and those it now reaches
            intervals[i][1] = max(intervals[i][1], intervals.pop(i + 1)[1])

    def seconds(self) -> dict[int, float]:
        """{actor pid: seconds during which it held at least one shard}."""
        return {pid: sum(end - start for start, end in spans) for pid, spans in self._intervals.items()}
