"""Re-score an existing output directory against the GT in its input shards (`nerve score`).

The masks are read back from the Parquet files, so this scores exactly what was written; the
per-shard confusion matrices in the stats files are replaced and summary.json is merged again. GT is
read as the run scored it (pipeline/score/ground_truth.py); an ok row whose GT no longer decodes is
returned with its reason, never dropped in silence.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from pipeline.output.outputdir import OutputDir
from pipeline.output.pngcodec import decode_index_png
from pipeline.output.run_record import RunRecord
from pipeline.output.summary import write_summary
from pipeline.read.prefetch import read_ahead
from pipeline.read.reader import raw_samples
from pipeline.read.shardlist import expand_shards, shard_id
from pipeline.score.ground_truth import UnreadableGroundTruth, run_ground_truth
from pipeline.score.scoring import confusion_matrix


@dataclass
class ShardGroundTruth:
    """One shard's GT: (key, occurrence) -> class ids as scored, and -> the reason it does not decode
    (a key repeated in the shard names several samples, each with its own GT)."""

    gts: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    unreadable: dict[tuple[str, int], str] = field(default_factory=dict)


def shard_ground_truth(url: str, record: RunRecord) -> ShardGroundTruth:
    found = ShardGroundTruth()
    for raw in raw_samples(url):
        if "seg.png" in raw:
            ident = (raw["__key__"], raw["__occurrence__"])
            try:
                found.gts[ident] = run_ground_truth(raw["seg.png"], record)
            except UnreadableGroundTruth as exc:
                found.unreadable[ident] = str(exc)
    return found


@dataclass
class Rescored:
    summary: dict
    unscored: list[dict]  # ok rows whose GT does not decode: {"shard", "key", "occurrence", "reason"}


def rescore(out_dir: str, shards=None) -> Rescored:
    """Recompute every done shard's confusion matrix from its written masks; the summary and what
    could not be scored. Error rows are never scored: the labeler already recorded why."""
    out = OutputDir(out_dir)
    record = out.existing_record()
    urls = expand_shards(shards if shards is not None else record.config.input.shards)
    done = out.done_shards()
    unscored = []
    for unreadable in read_ahead(lambda url: _rescore_shard(out, url, record), [u for u in urls if shard_id(u) in done]):
        unscored += unreadable
    out.clear_index()  # its totals hold the old matrices: the summary rebuilds it from the stats files
    return Rescored(write_summary(out, record.class_names, record.fingerprint), unscored)


def _rescore_shard(out: OutputDir, url: str, record: RunRecord) -> list[dict]:
    """Score one done shard's masks and rewrite its stats with the new matrix; returns its ok rows
    whose GT does not decode. Shards are rescored in parallel (pipeline.read.prefetch.read_ahead)."""
    shard, k = shard_id(url), len(record.class_names)
    truth = shard_ground_truth(url, record)
    confusion, scored, unscored = np.zeros((k, k + 1), dtype=np.int64), 0, []
    for row in out.rows(shard):
        ident = (row["key"], row.get("occurrence") or 0)  # outputs older than the column: 0
        if row["status"] != "ok":
            continue
        if ident in truth.gts:
            confusion += confusion_matrix(decode_index_png(row["mask_png"]), truth.gts[ident], k,
                                          record.config.dataset.ignore_index)
            scored += 1
        elif ident in truth.unreadable:
            unscored.append({"shard": shard, "key": ident[0], "occurrence": ident[1], "reason": truth.unreadable[ident]})
    stats = out.read_stats([shard])[shard]
    out.write_stats(replace(stats, confusion=confusion if scored else None, gt_images=scored))
    return unscored
