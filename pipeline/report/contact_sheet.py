"""Sample images for the report: image, ground truth and prediction side by side, in the report's
class colours (palette.py; the legend shows them).

Samples are spread over the shards (the first ones of each, round-robin) so that a sheet of a
multi-shard run is not all from one shard; the choice depends only on the run, so two runs of the
same pinned set show the same images and can be compared by eye.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from nerve_core.imageprep import as_pil
from pipeline.output.outputdir import OutputDir
from pipeline.output.pngcodec import decode_index_png
from pipeline.read.prefetch import read_ahead
from pipeline.read.reader import raw_samples
from pipeline.read.shardlist import expand_shards, shard_id
from pipeline.report.palette import class_palette, colorize
from pipeline.score.ground_truth import run_sample
from pipeline.score.scoring import confusion_matrix, image_scores

THUMB = 256  # longest side of a sheet image, in pixels


@dataclass
class SheetEntry:
    key: str
    shard: str
    image: str  # file names relative to the report directory
    gt: str | None
    prediction: str
    miou: float | None  # this image's own mIoU (percent) when it has GT


def _thumbnail(img: Image.Image, nearest: bool) -> Image.Image:
    scale = THUMB / max(img.size)
    if scale >= 1:
        return img
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.NEAREST if nearest else Image.BILINEAR)


def _predictions(out: OutputDir, shard: str, limit: int) -> dict[str, np.ndarray]:
    """key -> predicted class ids for the first `limit` ok rows of a done shard."""
    ok = [r for r in out.rows(shard, columns=["key", "status", "mask_png"]) if r["status"] == "ok"][:limit]
    return {r["key"]: decode_index_png(r["mask_png"]) for r in ok}


def _pick(counts: list[int], total: int) -> list[int]:
    """How many samples to take from each shard: round-robin until `total` or all are used."""
    take = [0] * len(counts)
    while sum(take) < total and any(t < c for t, c in zip(take, counts)):
        for i, c in enumerate(counts):
            if take[i] < c and sum(take) < total:
                take[i] += 1
    return take


def write_contact_sheet(out_dir: str, report_dir, num_samples: int, notes: list[str]) -> list[SheetEntry]:
    """Write {key}.image.png / .gt.png / .pred.png under report_dir/images; return what was written.
    A chosen sample that no longer decodes as the run decoded it is left out, and `notes` says why."""
    if num_samples <= 0:
        return []
    out = OutputDir(out_dir)
    record = out.existing_record()
    num_classes, palette = len(record.class_names), class_palette(record.class_names)
    done = out.done_shards()
    urls, preds, with_rows = [u for u in expand_shards(record.config.input.shards) if shard_id(u) in done], [], 0
    for shard_preds in read_ahead(lambda url: _predictions(out, shard_id(url), num_samples), urls):
        preds.append(shard_preds)
        with_rows += bool(shard_preds)
        if with_rows >= num_samples:  # the round-robin takes none from the shards after these
            break
    urls = urls[:len(preds)]
    take = _pick([len(p) for p in preds], num_samples)
    images = Path(report_dir) / "images"
    images.mkdir(parents=True, exist_ok=True)
    entries = []
    for url, shard_preds, n in zip(urls, preds, take):
        wanted = dict(list(shard_preds.items())[:n])
        written = 0
        for raw in raw_samples(url) if n else ():
            sample = run_sample(raw, record) if raw["__key__"] in wanted else None
            if sample is None:
                continue
            if sample.ok:
                entries.append(_write_entry(sample, shard_id(url), wanted[sample.key], images, num_classes,
                                            record.config.dataset.ignore_index, palette))
            else:  # an ok row whose sample fails now: the shards changed since the run
                notes.append(f"Samples: {shard_id(url)}/{sample.key} left out, it no longer decodes ({sample.error})")
            written += 1
            if written == n:
                break
    return entries


def _write_entry(sample, shard: str, pred: np.ndarray, images: Path, num_classes: int, ignore: int,
                 palette: list[int]) -> SheetEntry:
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", f"{shard}.{sample.key}")  # keys may hold "/"
    names = {"image": f"{stem}.image.png", "pred": f"{stem}.pred.png", "gt": f"{stem}.gt.png"}
    _thumbnail(as_pil(sample.image), nearest=False).save(images / names["image"])
    _thumbnail(colorize(pred, palette), nearest=True).save(images / names["pred"])
    miou = None
    if sample.gt is not None:
        _thumbnail(colorize(sample.gt, palette), nearest=True).save(images / names["gt"])
        miou = image_scores(confusion_matrix(pred, sample.gt, num_classes, ignore), None)["miou"]
    return SheetEntry(
        key=sample.key, shard=shard, image=f"images/{names['image']}",
        gt=f"images/{names['gt']}" if sample.gt is not None else None,
        prediction=f"images/{names['pred']}", miou=miou,
    )
