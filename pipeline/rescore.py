"""Re-score an existing output directory against the GT in its input shards (`nerve score`).

The masks are read back from the Parquet files, so this scores exactly what was written; the
per-shard confusion matrices in the stats files are replaced and summary.json is merged again.
"""
from __future__ import annotations

import numpy as np

from nerve_core.errors import NotFound
from pipeline.outputdir import done_shards, read_job_record
from pipeline.reader import decode_label_png, raw_samples
from pipeline.scoring import confusion_matrix, reduce_zero_label
from pipeline.shardlist import expand_shards, shard_id
from pipeline.storage import filesystem
from pipeline.summary import write_summary
from pipeline.writers import decode_png, read_json, read_rows, shard_paths, write_json


def shard_ground_truth(url: str, reduce_zero: bool = False, ignore_index: int = 255) -> dict[tuple[str, int], np.ndarray]:
    """(key, occurrence) -> GT class ids for the samples of a shard that carry a readable seg.png
    (a key repeated in the shard names several samples, each with its own GT)."""
    gts = {}
    for raw in raw_samples(url):
        if "seg.png" in raw:
            try:
                gt = decode_label_png(raw["seg.png"])
                gts[raw["__key__"], raw["__occurrence__"]] = reduce_zero_label(gt, ignore_index) if reduce_zero else gt
            except Exception:
                continue  # the labeler recorded this sample as an error row
    return gts


def rescore(out_dir: str, shards=None) -> dict:
    """Recompute every done shard's confusion matrix from its written masks; return the summary."""
    fs, root = filesystem(out_dir)
    record = read_job_record(fs, root)
    if record is None:
        raise NotFound(f"{out_dir} has no config.yaml: not an output directory")
    fingerprint = record["fingerprint"]
    class_names = [synonyms[0] for synonyms in fingerprint["classes"]]
    ignore = int(record["config"]["dataset"]["ignore_index"])
    k = len(class_names)
    urls = expand_shards(shards if shards is not None else record["config"]["input"]["shards"])
    done = done_shards(fs, root)
    for url in urls:
        shard = shard_id(url)
        if shard not in done:
            continue
        paths = shard_paths(root, shard)
        gts = shard_ground_truth(url, record["config"]["dataset"].get("reduce_zero_label", False), ignore)
        confusion, scored = np.zeros((k, k + 1), dtype=np.int64), 0
        for row in read_rows(fs, paths["parquet"]):
            ident = (row["key"], row.get("occurrence") or 0)  # outputs older than the column: 0
            if row["status"] == "ok" and ident in gts:
                confusion += confusion_matrix(decode_png(row["mask_png"]), gts[ident], k, ignore)
                scored += 1
        stats = read_json(fs, paths["stats"])
        stats.update(confusion=confusion.tolist() if scored else None, gt_images=scored)
        write_json(fs, paths["stats"], stats)
    return write_summary(fs, root, class_names, fingerprint)
