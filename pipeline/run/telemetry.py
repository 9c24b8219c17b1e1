"""Prometheus telemetry: the label job's live figures through Ray's metrics API, which each node's metrics agent serves
to Prometheus (names as scraped: `ray_` + the name here, counters with `_total` appended).

The driver counts what the job's summary counts, at the same moments (a shard's stats accepted,
a retry, a failure, a replacement actor), so the counters equal OUT/summary.json: images, error
rows by reason, shards done, retried and failed, actor restarts, and each shard's seconds. Each
Labeler actor reports what only it sees while it runs: its images per second and its engine's busy
share over the last RATE_WINDOW_S, the decoded samples queued ahead of its engine, and the seconds
of each engine batch. Every figure is tagged with the job (the output directory's name) and,
where one actor did the work, the actor (host:pid, as in the shard stats). Figures are recorded
per batch or per shard, never per image, from metric objects made once per driver or actor.
"""
from __future__ import annotations

import os
import socket
import time
from collections import deque

from pipeline.output.shard_stats import ShardStats

PREFIX = "nerve_"
RATE_WINDOW_S = 10.0  # an actor's images/s and busy share: over its batches of the last this many seconds
BATCH_SECONDS = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0]
SHARD_SECONDS = [1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0]


def job_tag(output_dir: str) -> str:
    """The job's name in every metric: its output directory's last path component (URLs too)."""
    return output_dir.rstrip("/").rsplit("/", 1)[-1] or output_dir


def actor_tag(actor: dict | None = None) -> str:
    """host:pid of an actor's info() (this process when None), as the shard stats record it."""
    if actor is None:
        return f"{socket.gethostname()}:{os.getpid()}"
    return f"{actor.get('host', '')}:{actor['pid']}"


def _counter(name: str, description: str, tags: tuple[str, ...]):
    from ray.util.metrics import Counter

    return Counter(PREFIX + name, description=description, tag_keys=tags)


class JobMetrics:
    """The driver's counters and the shard-time histogram, made once per label job."""

    def __init__(self, job: str):
        from ray.util.metrics import Histogram

        self.job = {"job": job}
        self.images = _counter("images", "images labeled (rows written, error rows included)", ("job", "actor"))
        self.errors = _counter("errors", "error rows, by reason", ("job", "actor", "reason"))
        self.shards_done = _counter("shards_done", "shards labeled", ("job", "actor"))
        self.shards_failed = _counter("shards_failed", "shards that used up their retries", ("job",))
        self.shards_retried = _counter("shards_retried", "shard attempts retried", ("job",))
        self.actor_restarts = _counter("actor_restarts", "labeler actors started in place of one that died", ("job",))
        self.shard_seconds = Histogram(PREFIX + "shard_seconds", description="seconds per shard, reading to stats file",
                                       boundaries=SHARD_SECONDS, tag_keys=("job", "actor"))

    def shard(self, stats: ShardStats, done: bool) -> None:
        """One shard's stats accepted into the job (done, or failed with its rows kept)."""
        tags = {**self.job, "actor": actor_tag(stats.actor) if stats.actor else ""}  # nerve tune's cache stats name none
        if stats.samples:  # Ray's counters take positive increments only
            self.images.inc(stats.samples, tags)
        for reason, count in stats.errors_by_reason.items():
            self.errors.inc(count, {**tags, "reason": reason})
        if done:
            self.shards_done.inc(1, tags)
        self.shard_seconds.observe(stats.seconds["total"], tags)

    def retried(self) -> None:
        self.shards_retried.inc(1, self.job)

    def failed(self) -> None:
        self.shards_failed.inc(1, self.job)

    def restarted(self) -> None:
        self.actor_restarts.inc(1, self.job)


class ActorMetrics:
    """One Labeler actor's gauges and batch histogram, made once when the actor starts."""

    def __init__(self, job: str):
        from ray.util.metrics import Gauge, Histogram

        tags = {"job": job, "actor": actor_tag()}
        keys = tuple(tags)
        self.rate = Gauge(PREFIX + "actor_images_per_second", description=f"images per second over the last {RATE_WINDOW_S:g} s",
                          tag_keys=keys)
        self.busy = Gauge(PREFIX + "engine_busy_share", description=f"share of the last {RATE_WINDOW_S:g} s the engine ran batches",
                          tag_keys=keys)
        self.queued = Gauge(PREFIX + "decoded_queued", description="decoded samples queued ahead of the engine", tag_keys=keys)
        self.batch_seconds = Histogram(PREFIX + "engine_batch_seconds", description="seconds per engine batch",
                                       boundaries=BATCH_SECONDS, tag_keys=keys)
        for metric in (self.rate, self.busy, self.queued, self.batch_seconds):
            metric.set_default_tags(tags)
        self.window = RateWindow(RATE_WINDOW_S)

    def batch(self, images: int, engine_seconds: float) -> None:
        """After each engine batch: the samples in it (error rows too) and its engine time."""
        if engine_seconds > 0:
            self.batch_seconds.observe(engine_seconds)
        rate, busy = self.window.add(images, engine_seconds)
        self.rate.set(rate)
        self.busy.set(busy)


class RateWindow:
    """Images per second and engine busy share over the batches that ended in the last `seconds`
    (since the first batch, while there has been less than that)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.events: deque = deque()  # (end time, images, engine seconds)
        self.images, self.engine = 0, 0.0  # sums over self.events
        self.first: float | None = None  # when the first batch's engine work began

    def add(self, images: int, engine_seconds: float, now: float | None = None) -> tuple[float, float]:
        now = time.monotonic() if now is None else now
        if self.first is None:
            self.first = now - engine_seconds
        self.events.append((now, images, engine_seconds))
        self.images, self.engine = self.images + images, self.engine + engine_seconds
        start = max(self.first, now - self.seconds)
        while self.events and self.events[0][0] <= start:
            _, gone, gone_engine = self.events.popleft()
            self.images, self.engine = self.images - gone, self.engine - gone_engine
        span = now - start
        if span <= 0:
            return 0.0, 0.0
        return self.images / span, min(1.0, self.engine / span)
