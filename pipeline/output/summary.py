"""Merge per-shard stats into OUT/summary.json (dataset-level figures: docs/method.md, section 13)."""
from __future__ import annotations

import numpy as np

from pipeline.output.outputdir import OutputDir
from pipeline.output.shard_stats import ShardStats
from pipeline.output.walk_stats import merge_walk
from pipeline.score.scoring import summarize_confusion


def merge_stats(stats: list[ShardStats], class_names: list[str], fingerprint: dict) -> dict:
    """Counts summed over shards; confusion matrices summed before any ratio is taken."""
    k = len(class_names)
    confusion = np.zeros((k, k + 1), dtype=np.int64)
    reasons: dict[str, int] = {}
    for s in stats:
        if s.confusion is not None:
            confusion += np.asarray(s.confusion, dtype=np.int64)
        for reason, n in s.errors_by_reason.items():
            reasons[reason] = reasons.get(reason, 0) + n
    scored = any(s.confusion is not None for s in stats)
    figures = summarize_confusion(confusion, class_names)  # all None when nothing was scored
    return {
        "num_shards": len(stats),
        "num_images": sum(s.samples for s in stats),
        "num_ok": sum(s.ok for s in stats),
        "num_errors": sum(s.errors for s in stats),
        "errors_by_reason": reasons,
        # Shards whose tar broke part-way: their rows are counted, but they are not done.
        "partial_shards": sorted(s.shard for s in stats if s.partial),
        "gt_images": sum(s.gt_images for s in stats),
        **figures,
        "confusion": confusion.tolist() if scored else None,
        "class_names": list(class_names),
        "fingerprint": fingerprint["digest"],
        "walk": merge_walk([s.walk for s in stats]),  # the random walk's diagnostics (pipeline/output/walk_stats.py); None without a walk
    }


def write_summary(out: OutputDir, class_names: list[str], fingerprint: dict, run: dict | None = None) -> dict:
    """Summary over every shard with stats in the directory (earlier runs included; partial ones
    counted and listed); `run` = this run's figures."""
    summary = merge_stats(list(out.stats().values()), class_names, fingerprint)
    if run is not None:
        summary["last_run"] = run
    out.write_summary(summary)
    return summary
