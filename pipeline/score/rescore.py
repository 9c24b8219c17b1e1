"""Re-score an existing output directory against the GT in its input shards (`nerve score`).

The masks are read back from the Parquet files, so this scores exactly what was written; the
per-shard confusion matrices in the stats files are replaced and summary.json is merged again.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from pipeline.output.outputdir import OutputDir
from pipeline.output.pngcodec import decode_index_png
from pipeline.output.summary import write_summary
from pipeline.read.reader import decode_label_png, raw_samples
from pipeline.read.shardlist import expand_shards, shard_id
from pipeline.score.scoring import confusion_matrix, scored_gt


def shard_ground_truth(url: str, dataset: dict) -> dict[tuple[str, int], np.ndarray]:
    """(key, occurrence) -> GT class ids for the samples of a shard that carry a readable seg.png
    (a key repeated in the shard names several samples, each with its own GT)."""
    gts = {}
    for raw in raw_samples(url):
        if "seg.png" in raw:
            try:
                gt = decode_label_png(raw["seg.png"])
                gts[raw["__key__"], raw["__occurrence__"]] = scored_gt(gt, dataset)
            except Exception:
                continue  # the labeler recorded this sample as an error row
    return gts


def rescore(out_dir: str, shards=None) -> dict:
    """Recompute every done shard's confusion matrix from its written masks; return the summary."""
    out = OutputDir(out_dir)
    record = out.existing_record()
    fingerprint = record["fingerprint"]
    class_names = [synonyms[0] for synonyms in fingerprint["classes"]]
    ignore = int(record["config"]["dataset"]["ignore_index"])
    k = len(class_names)
    urls = expand_shards(shards if shards is not None else record["config"]["input"]["shards"])
    done = out.done_shards()
    for url in urls:
        shard = shard_id(url)
        if shard not in done:
            continue
        gts = shard_ground_truth(url, record["config"]["dataset"])
        confusion, scored = np.zeros((k, k + 1), dtype=np.int64), 0
        for row in out.rows(shard):
            ident = (row["key"], row.get("occurrence") or 0)  # outputs older than the column: 0
            if row["status"] == "ok" and ident in gts:
                confusion += confusion_matrix(decode_index_png(row["mask_png"]), gts[ident], k, ignore)
                scored += 1
        stats = out.read_stats([shard])[shard]
        out.write_stats(replace(stats, confusion=confusion.tolist() if scored else None, gt_images=scored))
    out.clear_index()  # its totals hold the old matrices: the summary rebuilds it from the stats files
    return write_summary(out, class_names, fingerprint)
