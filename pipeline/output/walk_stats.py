"""The random walk's per-image diagnostics in a labeling job's outputs (docs/method.md, "Walk diagnostics").

Each Parquet row carries its image's diagnostics (`WALK_TYPE`, null without a walk). Each shard's
stats.json carries mergeable aggregates (`WalkStats.to_json`: per-image figures as fixed-bin
histograms, per-head sums), summary.json their merge (pipeline/output/walk_totals.py: mean, p5,
p95 per figure, per-head means), and a job whose images lose most of their global rows ends with
one warning (`walk_warning`).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

HEAD_KEYS = ("head_weights", "negative_fraction", "global_rows_kept", "local_rows_kept")
WALK_TYPE = pa.struct([*[(key, pa.list_(pa.float64())) for key in HEAD_KEYS], ("mass_moved", pa.float64())])
# Per-image figures: (name, upper end of the histogram's range); all start at 0.
FIGURES = (("negative_fraction", 1.0), ("global_rows_kept", 1.0), ("local_rows_kept", 1.0),
           ("head_weight_max", 1.0), ("mass_moved", 2.0))
BINS = 1000  # percentiles to 1/1000 of the range
WARN_BELOW = 0.5  # mean share of global rows kept under which a job warns


def image_figures(walk: dict) -> dict[str, float]:
    """The per-image scalars of one image's diagnostics: shares averaged over heads, the largest weight."""
    figures = {key: float(np.mean(walk[key])) for key in ("negative_fraction", "global_rows_kept", "local_rows_kept")}
    figures["head_weight_max"] = float(max(walk["head_weights"]))
    if walk.get("mass_moved") is not None:
        figures["mass_moved"] = float(walk["mass_moved"])
    return figures


class WalkStats:
    """Accumulates the diagnostics of a shard's images."""

    def __init__(self):
        self.images = 0
        self.hist = {name: np.zeros(BINS, dtype=np.int64) for name, _ in FIGURES}
        self.sums = {name: 0.0 for name, _ in FIGURES}
        self.head_sums: dict[str, np.ndarray] = {}
        self.heads_differ = False

    def add(self, walk: dict | None) -> None:
        if walk is None:
            return
        self.images += 1
        figures = image_figures(walk)
        for name, top in FIGURES:
            value = figures.get(name)
            if value is not None:
                self.sums[name] += value
                self.hist[name][min(BINS - 1, max(0, int(value / top * BINS)))] += 1
        heads = len(walk["head_weights"])
        self.heads_differ |= bool(self.head_sums) and len(self.head_sums["head_weights"]) != heads
        if not self.heads_differ:  # per-head means only make sense when every image has the same heads
            for key in HEAD_KEYS:
                self.head_sums[key] = self.head_sums.get(key, 0) + np.asarray(walk[key], dtype=np.float64)

    def to_json(self) -> dict | None:
        if not self.images:
            return None
        return {
            "images": self.images,
            # histograms stored sparsely, {bin: count}: a shard's images fill few of the BINS bins
            "figures": {name: {"sum": self.sums[name], "hist": {str(b): int(self.hist[name][b]) for b in np.flatnonzero(self.hist[name])}}
                        for name, _ in FIGURES},
            "head_sums": None if self.heads_differ else {key: v.tolist() for key, v in self.head_sums.items()},
        }


def walk_warning(walk: dict | None, refine) -> str | None:
    """One line when the job's images kept less than half their global rows on average, else None.

    `refine`: the job's engine.refine config (names the form and what to try)."""
    if not walk or "global_rows_kept" not in walk or walk["global_rows_kept"]["mean"] >= WARN_BELOW:
        return None
    kept, negative = walk["global_rows_kept"]["mean"], walk.get("negative_fraction", {}).get("mean")
    form = f"{refine.global_affinity} (sign_handling={refine.sign_handling})"
    others = "engine.refine.sign_handling=row_sum" if refine.sign_handling == "guard" else "engine.refine.global_affinity=exp_cosine"
    share = f"; {100 * negative:.0f}% of their cosines are negative" if negative is not None else ""
    return (f"the random walk's global term was mostly off: with {form} images kept {100 * kept:.0f}% of their "
            f"global rows on average{share}, the rest fell back to the local transition. Try {others} or "
            f"another engine.refine.global_affinity (`nerve bench sweep` compares them); summary.json 'walk' has the figures.")
