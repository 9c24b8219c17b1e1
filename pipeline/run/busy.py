"""How long each actor was labeling: the union of its shards' [started_at, finished_at] spans.

Shards handed over early (ray.shards_ahead) overlap the one before them, so summing their spans
would count the overlap twice; the union counts each second an actor had work once. Engine builds
come before a shard's start and are left out.
"""
from __future__ import annotations

from collections import defaultdict


def shard_span(stats: dict) -> tuple[float, float]:
    """(start, end) wall-clock seconds of one shard's stats (stats written before started_at
    existed: its end less its total)."""
    end = stats["finished_at"]
    return stats.get("started_at", end - stats["seconds"]["total"]), end


def busy_seconds(stats: list[dict]) -> dict[int, float]:
    """{actor pid: seconds during which it held at least one shard}."""
    spans: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for s in stats:
        spans[s["actor"]["pid"]].append(shard_span(s))
    return {pid: _union_length(sorted(intervals)) for pid, intervals in spans.items()}


def _union_length(intervals: list[tuple[float, float]]) -> float:
    total, reach = 0.0, float("-inf")
    for start, end in intervals:
        start = max(start, reach)
        if end > start:
            total += end - start
            reach = end
    return total
