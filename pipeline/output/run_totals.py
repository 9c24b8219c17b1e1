"""What summary.json is made of, kept as running totals of shard stats (docs/design.md, "Run totals").

A run's summary used to be a merge over every shard's stats file, read back at the end. `RunTotals`
folds one `ShardStats` at a time and merges with other totals: the driver folds each shard as its
stats arrive, and each part of the run index (pipeline/output/run_index.py) stores the totals of its
shards, so a summary over a million shards reads a few hundred parts. Counts are integers and float
sums exact, so the summary does not depend on the order shards were folded in.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from pipeline.output.shard_stats import ShardStats
from pipeline.output.walk_totals import WalkTotals
from pipeline.score.scoring import summarize_confusion


class RunTotals:
    def __init__(self, num_classes: int | None = None):
        self.num_classes = num_classes  # None: taken from the first confusion matrix folded
        self.shards = self.images = self.ok = self.errors = self.gt_images = 0
        self.errors_by_reason: Counter = Counter()
        self.confusion: np.ndarray | None = None  # None until a scored shard is folded
        self.walk = WalkTotals()

    def add(self, stats: ShardStats) -> None:
        self._count(1, stats.samples, stats.ok, stats.errors, stats.gt_images, stats.errors_by_reason,
                    stats.confusion)
        self.walk.add(stats.walk)

    def merge(self, other: RunTotals) -> None:
        self._count(other.shards, other.images, other.ok, other.errors, other.gt_images, other.errors_by_reason,
                    other.confusion)
        self.walk.merge(other.walk)

    def _count(self, shards: int, images: int, ok: int, errors: int, gt_images: int, reasons: dict,
               confusion: np.ndarray | None) -> None:
        self.shards, self.images, self.ok = self.shards + shards, self.images + images, self.ok + ok
        self.errors, self.gt_images = self.errors + errors, self.gt_images + gt_images
        self.errors_by_reason.update(reasons)
        if confusion is not None:
            self._add_confusion(confusion)

    def _add_confusion(self, confusion: np.ndarray) -> None:
        if self.num_classes is None:
            self.num_classes = confusion.shape[0]
        if confusion.shape != (self.num_classes, self.num_classes + 1):
            raise ValueError(f"confusion matrix {confusion.shape} does not fit {self.num_classes} classes")
        if self.confusion is None:
            self.confusion = confusion.astype(np.int64)  # a copy: the totals own their matrix
        else:
            self.confusion += confusion

    def summary(self, class_names: list[str], fingerprint: dict, partial_shards: list[str]) -> dict:
        """summary.json's figures (its `last_run` is the driver's); `partial_shards`: the folded shards
        whose tar broke part-way (their rows are counted, but they are not done)."""
        k = len(class_names)
        confusion = self.confusion if self.confusion is not None else np.zeros((k, k + 1), dtype=np.int64)
        return {
            "num_shards": self.shards,
            "num_images": self.images,
            "num_ok": self.ok,
            "num_errors": self.errors,
            "errors_by_reason": dict(sorted(self.errors_by_reason.items())),
            "partial_shards": sorted(partial_shards),
            "gt_images": self.gt_images,
            **summarize_confusion(confusion, class_names),  # all None when nothing was scored
            "confusion": None if self.confusion is None else self.confusion.tolist(),
            "class_names": list(class_names),
            "fingerprint": fingerprint["digest"],
            "walk": self.walk.summary(),  # the random walk's diagnostics; None without a walk
        }

    def to_json(self) -> dict:
        return {"num_classes": self.num_classes, "shards": self.shards, "images": self.images, "ok": self.ok,
                "errors": self.errors, "gt_images": self.gt_images, "errors_by_reason": dict(self.errors_by_reason),
                "confusion": None if self.confusion is None else self.confusion.tolist(), "walk": self.walk.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> RunTotals:
        totals = cls(data["num_classes"])
        for key in ("shards", "images", "ok", "errors", "gt_images"):
            setattr(totals, key, data[key])
        totals.errors_by_reason = Counter(data["errors_by_reason"])
        if data["confusion"] is not None:
            totals.confusion = np.asarray(data["confusion"], dtype=np.int64)
        totals.walk = WalkTotals.from_json(data["walk"])
        return totals


def merge_stats(stats: list[ShardStats], class_names: list[str], fingerprint: dict) -> dict:
    """The summary of `stats` folded one by one (partial shards counted and listed)."""
    totals = RunTotals(len(class_names))
    for s in stats:
        totals.add(s)
    return totals.summary(class_names, fingerprint, [s.shard for s in stats if s.partial])
