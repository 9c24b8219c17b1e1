"""The gallery's cards: one per ok row of an output directory, worst first; and the error rows.

Only the small columns are read here (no masks), so 100,000 rows fit in memory; masks are read
shard by shard when the thumbnails are drawn (thumbnails.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from pipeline.output.outputdir import OutputDir
from pipeline.read.prefetch import read_ahead

COLUMNS = ["key", "shard", "occurrence", "status", "error", "classes", "image_scores"]
# The score cards are sorted by, in order of preference: the first that some row has wins.
SCORE_FIELDS = ("miou", "mean_confidence")


@dataclass
class Card:
    shard: str
    key: str
    occurrence: int
    classes: list[int]
    scores: dict  # the row's image_scores (empty for outputs written before the column existed)
    thumb: str = ""  # file name under thumbs/, set when the thumbnail is made
    note: str = ""  # why the thumbnail lacks its image or GT panel (thumbnails.py), "" when it does not

    def score(self, field: str | None) -> float | None:
        return None if field is None else self.scores.get(field)


@dataclass
class ErrorRow:
    shard: str
    key: str
    occurrence: int
    reason: str
    detail: str


@dataclass
class RunRows:
    cards: list[Card]  # ok rows, worst first
    errors: list[ErrorRow]
    score_field: str | None  # what the cards are sorted by: per-image mIoU, else mean confidence, else None (key)


def read_rows(out: OutputDir, shards: list[str]) -> RunRows:
    """Every row of `shards` (done ones: partial shards' rows would be shown twice after a retry)."""
    cards, errors = [], []
    for shard, rows in read_ahead(lambda shard: (shard, list(out.rows(shard, columns=COLUMNS))), shards):
        for row in rows:
            occurrence = row.get("occurrence") or 0
            if row["status"] == "ok":
                cards.append(Card(shard, row["key"], occurrence, list(row["classes"] or []), row.get("image_scores") or {}))
            else:
                reason, _, detail = (row["error"] or "").partition(": ")
                errors.append(ErrorRow(shard, row["key"], occurrence, reason, detail))
    field = next((f for f in SCORE_FIELDS if any(c.scores.get(f) is not None for c in cards)), None)
    cards.sort(key=lambda c: (c.score(field) is None, c.score(field) or 0.0, c.shard, c.key, c.occurrence))
    return RunRows(cards, errors, field)
