"""The random walk's diagnostics summed over shards: summary.json's `walk` and the report's histograms.

Each shard's stats carry its images' figures as fixed-bin histograms and sums, and per-head sums
(pipeline/output/walk_stats.py). `WalkTotals` folds those sections one at a time and merges with
other totals, so that the driver and the run index (pipeline/output/run_index.py) keep them as
they go instead of re-reading every shard; float sums are exact (pipeline/output/exact_sum.py), so
any order of folding gives the same summary.
"""
from __future__ import annotations

import numpy as np

from pipeline.output.exact_sum import ExactSum
from pipeline.output.walk_stats import BINS, FIGURES, HEAD_KEYS

MIXED = -1  # `heads` when shards differ in head count (or one lacks per-head sums): no per-head means


class WalkTotals:
    def __init__(self):
        self.images = 0
        self.hist = {name: np.zeros(BINS, dtype=np.int64) for name, _ in FIGURES}
        self.sums = {name: ExactSum() for name, _ in FIGURES}
        self.heads: int | None = None  # the shards' head count; None before the first walked shard
        self.head_sums: dict[str, list[ExactSum]] = {}

    def add(self, walk: dict | None) -> None:
        """Fold one shard's `walk` section (WalkStats.to_json; None: no image was walked)."""
        if not walk:
            return
        self.images += walk["images"]
        for name, _ in FIGURES:
            figure = walk["figures"][name]
            self.sums[name].add(figure["sum"])
            for b, count in figure["hist"].items():
                self.hist[name][int(b)] += count
        head_sums = walk.get("head_sums")
        self._fold_heads(len(head_sums["head_weights"]) if head_sums else MIXED,
                         {key: [ExactSum([v]) for v in head_sums[key]] for key in HEAD_KEYS} if head_sums else {})

    def merge(self, other: WalkTotals) -> None:
        if other.heads is None:
            return
        self.images += other.images
        for name, _ in FIGURES:
            self.hist[name] += other.hist[name]
            self.sums[name].merge(other.sums[name])
        self._fold_heads(other.heads, other.head_sums)

    def _fold_heads(self, heads: int, sums: dict[str, list[ExactSum]]) -> None:
        self.heads = heads if self.heads in (None, heads) else MIXED
        if self.heads == MIXED:
            self.head_sums = {}
            return
        for key in HEAD_KEYS:
            mine = self.head_sums.setdefault(key, [ExactSum() for _ in range(heads)])
            for total, part in zip(mine, sums[key]):
                total.merge(part)

    def summary(self) -> dict | None:
        """summary.json's `walk`: images, mean / p5 / p95 per figure, per-head means (None when no
        image was walked)."""
        if not self.images:
            return None
        merged: dict = {"images": self.images}
        for name, top in FIGURES:
            counted = int(self.hist[name].sum())
            if counted:
                merged[name] = {"mean": self.sums[name].value / counted,
                                "p5": _percentile(self.hist[name], top, 0.05), "p95": _percentile(self.hist[name], top, 0.95)}
        if self.heads not in (None, MIXED):
            merged["per_head"] = {key: [s.value / self.images for s in self.head_sums[key]] for key in HEAD_KEYS}
        return merged

    def histograms(self, bins: int = 20) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """figure -> (bin edges, image counts), the BINS bins summed into `bins` (BINS must be a
        multiple of it); figures no image has are left out. For the report's histograms."""
        return {name: (np.linspace(0.0, top, bins + 1), self.hist[name].reshape(bins, -1).sum(axis=1))
                for name, top in FIGURES if self.hist[name].any()}

    def to_json(self) -> dict:
        return {"images": self.images, "heads": self.heads,
                "figures": {name: {"sum": self.sums[name].partials,
                                   "hist": {str(b): int(self.hist[name][b]) for b in np.flatnonzero(self.hist[name])}}
                            for name, _ in FIGURES},
                "head_sums": {key: [s.partials for s in sums] for key, sums in self.head_sums.items()}}

    @classmethod
    def from_json(cls, data: dict) -> WalkTotals:
        totals = cls()
        totals.images, totals.heads = data["images"], data["heads"]
        for name, _ in FIGURES:
            totals.sums[name] = ExactSum(data["figures"][name]["sum"])
            for b, count in data["figures"][name]["hist"].items():
                totals.hist[name][int(b)] = count
        totals.head_sums = {key: [ExactSum(p) for p in sums] for key, sums in data["head_sums"].items()}
        return totals


def _percentile(hist: np.ndarray, top: float, share: float) -> float:
    """The value below which `share` of the counted images lie, linear within a bin."""
    target = share * hist.sum()
    cumulative = np.cumsum(hist)
    b = int(np.searchsorted(cumulative, target, side="left"))
    before = cumulative[b - 1] if b else 0
    inside = (target - before) / hist[b] if hist[b] else 0.0
    return float((b + inside) * top / BINS)


def fold_walks(walks: list[dict | None]) -> WalkTotals:
    """The totals of shards' `walk` sections (None: no image walked there)."""
    totals = WalkTotals()
    for walk in walks:
        totals.add(walk)
    return totals
