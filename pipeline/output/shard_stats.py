"""`ShardStats`: the one record of what a shard's labeling (or its tune cache) did, and its stats file.

The stats file `OUT/shards/{shard}.stats.json` is the shard's done-marker (docs/design.md, "The
output directory"). It is made only here: the label job's accumulator (pipeline.run.shard_tally)
and the tune cache (pipeline.tune.cache_writer) build a ShardStats, `OutputDir.write_stats` writes
it, and every reader (the pool, the driver, the summary, telemetry, verify, the reports) gets it
back from `OutputDir.stats()` and reads attributes, never keys. The JSON keys are those of the
README's "Output schema"; a file written before a key existed reads with that key's default.

In memory the confusion matrix is an int64 array, not the file's nested list: it crosses Ray as
one buffer and folds into the run's totals without a conversion (a 171-class matrix is 29,000
numbers, a millisecond as a list at every shard event of the driver).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

# Keys a label job's stats file always holds besides the common ones (null when not measured).
_LABEL_KEYS = ("expected_samples", "gt_images", "confusion", "cpu_seconds", "images_per_second",
               "engine_images_per_second", "engine_fingerprint", "actor", "started_at", "walk")


@dataclass(frozen=True)
class CacheIndex:
    """What a tune-cache shard stored (pipeline.tune.cache_writer): its index of images."""

    images: list[dict]  # per stored image: file, key, occurrence, image_id, size, classes, bytes
    layers: list[dict]  # the captured SD layers: name, grid
    qk_dtype: str  # the dtype q and k were stored in
    bytes: int  # the shard's stored bytes
    no_gt: int  # ok images not stored: without ground truth a trial cannot score them

    @classmethod
    def from_json(cls, data: dict) -> CacheIndex:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class ShardStats:
    """One shard's figures. `partial`: the tar broke part-way (`read_error` says how): the rows
    before the damage are written, but the shard is not done."""

    shard: str
    url: str = ""
    attempt: int = 0
    samples: int = 0  # rows written: ok + errors
    ok: int = 0
    errors: int = 0
    errors_by_reason: dict[str, int] = field(default_factory=dict)
    partial: bool = False
    read_error: str | None = None
    fingerprint: str = ""  # the job's fingerprint digest
    seconds: dict[str, float] = field(default_factory=dict)  # engine, total; label jobs: engine_build, waiting
    finished_at: float = 0.0  # wall clock
    # The label job's (None, and not written, for the tune cache's shards):
    expected_samples: int | None = None  # from the shards' manifest.json
    gt_images: int = 0
    confusion: np.ndarray | None = None  # (K, K+1) int64; None when no image was scored
    cpu_seconds: dict[str, float] | None = None  # per stage, and the actor process's ("process")
    images_per_second: float | None = None
    engine_images_per_second: float | None = None
    engine_fingerprint: str | None = None
    actor: dict | None = None  # the actor's info(): pid, host, node_id, gpu_ids, ...
    started_at: float | None = None  # wall clock; None in stats written before it was recorded
    walk: dict | None = None  # WalkStats.to_json
    cache: CacheIndex | None = None  # the tune cache's index (None for a label job's shard)

    def __eq__(self, other) -> bool:  # the generated one cannot compare arrays
        return isinstance(other, ShardStats) and self.to_json() == other.to_json()

    @property
    def actor_pid(self) -> int | None:
        return None if self.actor is None else self.actor["pid"]

    def span(self) -> tuple[float, float]:
        """(start, end) wall-clock seconds (stats written before started_at existed: end less total)."""
        start = self.started_at if self.started_at is not None else self.finished_at - self.seconds["total"]
        return start, self.finished_at

    def to_json(self) -> dict:
        data = {"shard": self.shard, "url": self.url, "attempt": self.attempt, "samples": self.samples, "ok": self.ok,
                "errors": self.errors, "errors_by_reason": dict(self.errors_by_reason), "partial": self.partial,
                "fingerprint": self.fingerprint, "seconds": dict(self.seconds), "finished_at": self.finished_at}
        if self.read_error is not None:
            data["read_error"] = self.read_error
        if self.cache is not None:
            data.update({f.name: getattr(self.cache, f.name) for f in fields(CacheIndex)})
        else:
            data.update({key: getattr(self, key) for key in _LABEL_KEYS})
            data["confusion"] = None if self.confusion is None else self.confusion.tolist()
        return data

    @classmethod
    def from_json(cls, data: dict, shard: str | None = None) -> ShardStats:
        """A stats file's content; `shard` (its file name) when the file does not name it."""
        known = {f.name for f in fields(cls)} - {"shard", "cache"}
        cache = CacheIndex.from_json(data) if "qk_dtype" in data else None
        values = {k: v for k, v in data.items() if k in known and v is not None}
        if "confusion" in values:
            values["confusion"] = np.asarray(values["confusion"], dtype=np.int64)
        return cls(shard=data.get("shard", shard), cache=cache, **values)
