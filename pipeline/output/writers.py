"""Per-shard outputs (docs/design.md, "The output directory"): Parquet rows, COCO RLE, stats.

The stats file is written last and is the shard's done-marker; every file goes through
`atomic_write`, so a shard interrupted at any point is either done or redone in full.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.output.hf_features import IMAGE_TYPE, image_value, with_image_features
from pipeline.output.maskcodec import ColumnRuns, coco_rles
from pipeline.output.pngcodec import encode_index_png
from pipeline.output.walk_stats import WALK_TYPE
from pipeline.storage import atomic_write, join

UNLABELED = 255
# One image's scores (pipeline/score/scoring.py: image_scores); null on error rows, null fields where
# a score does not apply (no GT, no stored confidence).
IMAGE_SCORES_TYPE = pa.struct([("pixel_accuracy", pa.float64()), ("miou", pa.float64()), ("mean_confidence", pa.float64())])

ROW_SCHEMA = with_image_features(pa.schema([
    ("key", pa.string()),
    ("shard", pa.string()),
    ("occurrence", pa.int32()),  # earlier samples of the shard with this key: (shard, key, occurrence) is unique
    ("image_id", pa.int64()),
    ("status", pa.string()),  # "ok" | "error"
    ("error", pa.string()),
    ("height", pa.int32()),
    ("width", pa.int32()),
    ("mask_png", pa.binary()),  # single-channel PNG of class ids, 255 = unlabeled
    ("classes", pa.list_(pa.int32())),
    ("confidence_png", pa.binary()),  # quantised top-class probability (0..255), when asked for
    ("fingerprint", pa.string()),
    ("walk", WALK_TYPE),  # the random walk's diagnostics of this image (pipeline/output/walk_stats.py); null without a walk
    ("image_scores", IMAGE_SCORES_TYPE),
    # The same PNG as mask_png, as a Hugging Face Image (struct {bytes, path}): datasets and viewers
    # open it as an image. Confidence maps are not duplicated this way (they are much larger).
    ("mask", IMAGE_TYPE),
]), image_columns=("mask",))


def classes_present(labels: np.ndarray) -> list[int]:
    counts = np.bincount(np.asarray(labels, dtype=np.uint8).reshape(-1), minlength=256)
    return [int(c) for c in np.flatnonzero(counts) if c != UNLABELED]


def coco_results(image_id: int, labels: np.ndarray, runs: ColumnRuns | None = None) -> list[dict]:
    """One COCO semantic result per class present; RLE counts as str so the list is JSON.
    `runs`: the map's ColumnRuns when the caller has them already."""
    return [{"image_id": int(image_id), "category_id": class_id, "segmentation": rle}
            for class_id, rle in coco_rles(labels, runs).items()]


@dataclass
class ShardResult:
    """What one shard produced, in input order."""

    shard: str
    fingerprint: str
    rows: list[dict] = field(default_factory=list)
    coco: list[dict] = field(default_factory=list)

    def add_ok(self, key: str, image_id: int, labels: np.ndarray, confidence: np.ndarray | None,
               occurrence: int = 0, walk: dict | None = None, scores: dict | None = None) -> None:
        """`scores`: the image's `image_scores` (scoring.image_scores)."""
        runs = ColumnRuns(labels)  # one pass gives the classes present and every class's RLE
        self.rows.append(self._row(key, occurrence, image_id, "ok", None, labels.shape, encode_index_png(labels),
                                   runs.classes(),
                                   None if confidence is None else encode_index_png(confidence), walk, scores))
        self.coco.extend(coco_results(image_id, labels, runs))

    def add_error(self, key: str, image_id: int, error: str, shape=None, occurrence: int = 0) -> None:
        self.rows.append(self._row(key, occurrence, image_id, "error", error, shape, None, [], None))

    def _row(self, key, occurrence, image_id, status, error, shape, mask_png, classes, confidence_png, walk=None,
             scores=None) -> dict:
        height, width = shape if shape is not None else (None, None)
        return {"key": key, "shard": self.shard, "occurrence": occurrence, "image_id": int(image_id), "status": status,
                "error": error, "height": height, "width": width, "mask_png": mask_png,
                "classes": classes, "confidence_png": confidence_png, "fingerprint": self.fingerprint, "walk": walk,
                "image_scores": scores, "mask": image_value(mask_png, f"{key}.png")}


def shard_paths(out_dir: str, shard: str) -> dict[str, str]:
    base = join(out_dir, "shards", shard)
    return {"parquet": f"{base}.parquet", "coco": f"{base}.coco.json", "stats": f"{base}.stats.json"}


def prime_row_conversion() -> None:
    """Pay now what pyarrow pays on its first conversion of Python values: importing pandas, about
    0.4 s. A labeler calls this while its engine loads, so that its first shard's write is as quick
    as the others and the shard's timings do not carry a start-up cost."""
    pa.array([0])


def parquet_bytes(rows: list[dict], compression: str = "zstd") -> bytes:
    table = pa.Table.from_pylist(rows, schema=ROW_SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression=compression)
    return buf.getvalue()


def write_shard_outputs(fs, out_dir: str, result: ShardResult, compression: str = "zstd") -> None:
    """Parquet, then COCO; the stats file (the done-marker, `OutputDir.write_stats`) comes after."""
    paths = shard_paths(out_dir, result.shard)
    fs.makedirs(join(out_dir, "shards"), exist_ok=True)
    atomic_write(fs, paths["parquet"], parquet_bytes(result.rows, compression))
    atomic_write(fs, paths["coco"], json.dumps(result.coco).encode("utf-8"))


def write_json(fs, path: str, obj) -> None:
    atomic_write(fs, path, json.dumps(obj, indent=1, sort_keys=True).encode("utf-8"))


def read_json(fs, path: str):
    with fs.open(path, "r") as f:
        return json.load(f)

