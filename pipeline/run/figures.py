"""This run's figures (summary.json's `last_run`), folded as each shard's stats arrive.

The driver used to keep every shard's stats to sum them at the end; at a million shards that list
alone is gigabytes. `RunFigures` keeps sums and each actor's busy intervals instead.
"""
from __future__ import annotations

from pipeline.output.shard_stats import ShardStats
from pipeline.run.busy import BusySpans


class RunFigures:
    def __init__(self):
        self.shards = self.images = self.ok = self.errors = 0
        self.engine_seconds = 0.0
        self.busy = BusySpans()

    def add(self, stats: ShardStats) -> None:
        """A shard this run labeled (done, or partial with its retries used up)."""
        self.shards += 1
        self.images += stats.samples
        self.ok += stats.ok
        self.errors += stats.errors
        self.engine_seconds += stats.seconds.get("engine", 0.0)
        if stats.actor is not None:
            self.busy.add(stats)

    def last_run(self, seconds: float, skipped: int, failed: int, retries: int) -> dict:
        """summary.json's `last_run`; `seconds`: the run's wall time, Ray and model start included."""
        shard_seconds = sum(self.busy.seconds().values())  # per actor, engine builds excluded
        return {
            "shards_labeled": self.shards, "shards_skipped": skipped, "shards_failed": failed,
            "retries": retries, "images": self.images, "seconds": round(seconds, 3),
            "images_per_second": self.images / seconds if self.images else None,  # Ray and model start included
            # Reading, decoding, engine, encoding and writing, once actors are up (summed over actors).
            "labeling_images_per_second": self.images / shard_seconds if shard_seconds else None,
            # The engine alone on the same images: its batches' wall time summed over actors.
            "engine_images_per_second": self.ok / self.engine_seconds if self.engine_seconds else None,
        }
