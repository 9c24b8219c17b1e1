"""The host ceiling: the fastest stand-in engine one labeler actor keeps fed, and what each stage costs.

A rate R is sustained when every actor labels at >= `sustain` x R images/s in its steady state:
from the end of its first shard to the end of its last (so gaps between shards count, and the
start-up of Ray's threads, imports and the first shard's fill do not). The ceiling is
found by doubling R until a rate is not sustained, then bisecting (geometrically) until the highest
sustained and the lowest failed rate are within `precision` of each other. CPU milliseconds per
image per stage come from the same steady shards' `cpu_seconds` (thread CPU time, see
pipeline.run.cpuclock); `other` is the rest of the actor process's CPU (Ray's threads, the engine
thread's bookkeeping, the garbage collector) and `total` all of it.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from pipeline.output.shard_stats import ShardStats
from pipeline.run.busy import by_actor

STAGES = ("read", "decode", "prepare", "engine", "encode", "score", "progress", "metrics", "write")


def steady_state(stats: list[ShardStats]) -> list[ShardStats]:
    """The shards after each actor's first (whose time and CPU carry the start-up: imports, Ray's
    threads, the first fill); an actor with one shard keeps it."""
    return [s for group in by_actor(stats) for s in (group[1:] or group)]


def actor_rates(stats: list[ShardStats]) -> list[float]:
    """Each actor's steady rate: the images of its shards after its first, over the time from the
    end of its first shard to the end of its last; an actor with one shard, that shard's own rate."""
    rates = []
    for group in by_actor(stats):
        start = group[0].finished_at if len(group) > 1 else group[0].span()[0]
        span = group[-1].finished_at - start
        if span > 0:
            rates.append(sum(s.samples for s in (group[1:] or group)) / span)
    return rates


def cpu_ms_per_image(stats: list[ShardStats]) -> dict[str, float]:
    """Thread CPU ms per image for each stage, `other` (the rest of the process) and `total`."""
    images = sum(s.samples for s in stats)
    if not images:
        return {}
    seconds: dict[str, float] = defaultdict(float)
    for s in stats:
        for stage, value in (s.cpu_seconds or {}).items():
            seconds[stage] += value
    out = {stage: 1e3 * seconds[stage] / images for stage in STAGES}
    total = 1e3 * seconds["process"] / images
    out["other"] = max(0.0, total - sum(out.values()))
    out["total"] = total
    return out


def find_ceiling(sustains: Callable[[float], bool], start: float, precision: float = 0.1,
                 highest: float = 10_000.0, lowest: float = 1.0) -> float:
    """Highest rate for which `sustains(rate)` holds, to within `precision` (relative); 0 if even
    `lowest` is not sustained, `highest` if that is."""
    good, bad = None, None
    rate = min(max(start, lowest), highest)
    while True:
        if sustains(rate):
            good = rate
            if rate >= highest:
                return rate
        else:
            bad = rate
            if rate <= lowest:
                return 0.0
        if good is not None and bad is not None:
            if bad / good <= 1 + precision:
                return good
            rate = (good * bad) ** 0.5
        else:
            rate = min(rate * 2, highest) if bad is None else max(rate / 2, lowest)


def measure_ceiling(label_at: Callable[[float, int, Path], list[ShardStats]], threads: int, start: float, sustain: float,
                    precision: float, work_dir: Path) -> dict:
    """The ceiling for one decode-thread count: every trial, and the CPU costs at the ceiling."""
    trials = []

    def sustains(rate: float) -> bool:
        stats = label_at(rate, threads, work_dir / f"t{threads}-{rate:.1f}")
        rates = actor_rates(stats)
        achieved = min(rates) if rates else 0.0
        trials.append({"images_per_second": rate, "achieved_per_actor": achieved, "sustained": achieved >= sustain * rate,
                       "images": sum(s.samples for s in stats), "cpu_ms_per_image": cpu_ms_per_image(steady_state(stats))})
        return trials[-1]["sustained"]

    ceiling = find_ceiling(sustains, start, precision)
    at_ceiling = next((t for t in trials if t["images_per_second"] == ceiling), None)
    return {"decode_threads": threads, "host_ceiling_images_per_second": ceiling,
            "cpu_ms_per_image": at_ceiling["cpu_ms_per_image"] if at_ceiling else {}, "trials": trials}
