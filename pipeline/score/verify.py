"""Check an output directory against its input shards: every sample accounted for exactly once.

Reads the inputs independently of the labeler (keys and image sizes straight from the tars) and
checks the outputs with the libraries their users load them with: Parquet rows, PNG masks of the
image's size, COCO results through `COCO.loadRes`, RLEs equal to the masks they came from.
An input sample is identified by (shard, key, occurrence): a key repeated inside a shard or across
shards is reported, and each of its samples must still have exactly one row.
"""
from __future__ import annotations

import io
import json
from collections import Counter
from contextlib import redirect_stdout
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from pipeline.output.outputdir import OutputDir
from pipeline.output.pngcodec import decode_index_png
from pipeline.read.prefetch import read_ahead
from pipeline.read.reader import IMAGE_EXTS, raw_samples
from pipeline.read.shardlist import expand_shards, manifest_counts, shard_id
from pipeline.reasons import reason_of

_TRANSPOSING = (5, 6, 7, 8)  # EXIF orientations that swap width and height


@dataclass
class VerifyReport:
    shards: int = 0
    inputs: int = 0
    ok_rows: int = 0
    error_rows: Counter = field(default_factory=Counter)  # by reason
    missing_keys: list = field(default_factory=list)
    duplicated_keys: list = field(default_factory=list)  # input samples with more than one row
    duplicate_input_keys: list = field(default_factory=list)  # keys the inputs repeat (reported, not wrong)
    partial_shards: list = field(default_factory=list)
    short_shards: list = field(default_factory=list)  # fewer samples in the tar than its manifest.json lists
    unexpected_keys: list = field(default_factory=list)
    shards_not_done: list = field(default_factory=list)
    unreadable_inputs: list = field(default_factory=list)
    mask_problems: list = field(default_factory=list)
    coco_problems: list = field(default_factory=list)
    failed_shards: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing_keys or self.duplicated_keys or self.unexpected_keys or self.shards_not_done
                    or self.partial_shards or self.short_shards or self.unreadable_inputs or self.mask_problems or self.coco_problems
                    or self.failed_shards)

    def format(self, limit: int = 10) -> str:
        lines = [
            f"{'OK' if self.ok else 'PROBLEMS'}: {self.shards} shards, {self.inputs} input samples, "
            f"{self.ok_rows} ok rows, {sum(self.error_rows.values())} error rows",
        ]
        if self.error_rows:
            lines.append("error rows by reason: " + ", ".join(f"{k}={v}" for k, v in sorted(self.error_rows.items())))
        for name in ("shards_not_done", "partial_shards", "short_shards", "failed_shards", "unreadable_inputs", "missing_keys",
                     "duplicated_keys", "unexpected_keys", "mask_problems", "coco_problems", "duplicate_input_keys"):
            items = getattr(self, name)
            if items:
                shown = ", ".join(str(i) for i in items[:limit]) + (" ..." if len(items) > limit else "")
                lines.append(f"{name.replace('_', ' ')} ({len(items)}): {shown}")
        return "\n".join(lines)


def coco_loads(results: list[dict], sizes: dict[int, tuple[int, int]]) -> str | None:
    """None if `COCO.loadRes` accepts `results` against a GT holding images `sizes`, else why not."""
    categories = sorted({r["category_id"] for r in results})
    gt = COCO()
    gt.dataset = {
        "images": [{"id": i, "height": h, "width": w} for i, (h, w) in sizes.items()],
        "categories": [{"id": c, "name": str(c)} for c in categories],
        "annotations": [],
    }
    try:
        with redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
            gt.createIndex()
            if results:
                gt.loadRes(results)
    except Exception as exc:  # loadRes asserts and raises assorted types
        return f"{type(exc).__name__}: {exc}"
    return None


def _oriented_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) after EXIF orientation, from the header only; None if unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            w, h = img.size
            if img.getexif().get(0x0112) in _TRANSPOSING:
                w, h = h, w
            return h, w
    except Exception:
        return None


def _input_sizes(url: str, unreadable: list[str]) -> dict[tuple[str, int], tuple[int, int] | None]:
    """(key, occurrence) -> oriented image size (None: no readable image) for every sample of the
    shard; why the tar cannot be read to its end goes to `unreadable`."""
    sizes: dict = {}
    try:
        for raw in raw_samples(url):
            image = next((raw[e] for e in IMAGE_EXTS if e in raw), None)
            sizes[raw["__key__"], raw["__occurrence__"]] = None if image is None else _oriented_size(image)
    except Exception as exc:
        unreadable.append(f"{shard_id(url)}: {type(exc).__name__}: {exc}")
    return sizes


def _name(shard: str, key: str, occurrence: int) -> str:
    return f"{shard}/{key}" + (f" (occurrence {occurrence})" if occurrence else "")


def _repeated_keys(inputs: dict[str, dict]) -> list[str]:
    """Keys that occur more than once in a shard, or in more than one shard."""
    shards_of: dict[str, list[str]] = {}
    found = []
    for shard, sizes in inputs.items():
        counts = Counter(key for key, _ in sizes)
        found += [f"{shard}/{k} ({n} times in the shard)" for k, n in counts.items() if n > 1]
        for key in counts:
            shards_of.setdefault(key, []).append(shard)
    found += [f"{k} (in shards {', '.join(s)})" for k, s in shards_of.items() if len(s) > 1]
    return found


def _check_rows(shard: str, rows: list[dict], sizes: dict, report: VerifyReport) -> list[tuple[int, np.ndarray]]:
    """Count rows against the inputs; return (image_id, mask) for the ok rows."""
    seen = Counter((r["key"], r.get("occurrence") or 0) for r in rows)
    report.duplicated_keys += [_name(shard, *k) for k, n in seen.items() if n > 1]
    report.missing_keys += [_name(shard, *k) for k in sizes if k not in seen]
    report.unexpected_keys += [_name(shard, *k) for k in seen if k not in sizes]
    masks = []
    for row in rows:
        ident = (row["key"], row.get("occurrence") or 0)
        where = _name(shard, *ident)
        if row["status"] != "ok":
            report.error_rows[reason_of(row["error"] or "unknown")] += 1
            continue
        report.ok_rows += 1
        try:
            mask = decode_index_png(row["mask_png"])
        except Exception as exc:
            report.mask_problems.append(f"{where}: mask does not decode ({exc})")
            continue
        expected = sizes.get(ident)
        if mask.shape != (row["height"], row["width"]) or (expected is not None and mask.shape != expected):
            report.mask_problems.append(f"{where}: mask {mask.shape}, row {(row['height'], row['width'])}, image {expected}")
        if sorted(int(c) for c in np.unique(mask) if c != 255) != list(row["classes"]):
            report.mask_problems.append(f"{where}: classes column differs from the mask")
        if "mask" in row and (row["mask"] or {}).get("bytes") != row["mask_png"]:  # outputs older than it lack it
            report.mask_problems.append(f"{where}: the mask image column differs from mask_png")
        masks.append((row["image_id"], mask))
    return masks


def _check_coco(shard: str, results: list[dict], masks: list[tuple[int, np.ndarray]], report: VerifyReport) -> None:
    """Every result loads and equals one mask of its image id; one result per (mask, class present).

    Ids may repeat (two samples whose json carries the same image_id): then a result must match
    one of that id's masks, and the counts of (id, class) pairs must agree.
    """
    by_id: dict[int, list[np.ndarray]] = {}
    for image_id, mask in masks:
        by_id.setdefault(image_id, []).append(mask)
    problem = coco_loads(results, {i: m[0].shape for i, m in by_id.items()})
    if problem:
        report.coco_problems.append(f"{shard}: COCO.loadRes refuses the results: {problem}")
        return
    found: Counter = Counter()
    for r in results:
        rle = dict(r["segmentation"], counts=r["segmentation"]["counts"].encode("ascii"))
        decoded = mask_utils.decode(rle).astype(bool)
        candidates = by_id[r["image_id"]]
        if not any(m.shape == decoded.shape and np.array_equal(decoded, m == r["category_id"]) for m in candidates):
            report.coco_problems.append(f"{shard}: image {r['image_id']} class {r['category_id']}: RLE differs from the mask")
        found[r["image_id"], r["category_id"]] += 1
    wanted = Counter((i, int(c)) for i, m in masks for c in np.unique(m) if c != 255)
    if wanted != found:
        report.coco_problems.append(f"{shard}: {sum((wanted - found).values())} (image, class) pairs without a COCO "
                                    f"result, {sum((found - wanted).values())} results without a mask")


def verify_output(out_dir: str, shards=None) -> VerifyReport:
    """Check `out_dir` against `shards` (default: the input recorded in OUT/config.yaml)."""
    out = OutputDir(out_dir)
    urls = expand_shards(shards if shards is not None else out.existing_record().config.input.shards)
    report = VerifyReport(shards=len(urls))
    index = out.index()
    done, labeled = index.done(), set(out.labeled_shards())
    counts = manifest_counts(urls)
    inputs = {}

    def read(url: str) -> tuple:  # a shard's input tar, rows and COCO results, read in parallel with others
        shard = shard_id(url)
        unreadable: list[str] = []
        sizes = _input_sizes(url, unreadable)
        return shard, sizes, unreadable, list(out.rows(shard)) if shard in labeled else [], out.coco_results(shard)

    for shard, sizes, unreadable, rows, results in read_ahead(read, urls):
        inputs[shard] = sizes
        report.unreadable_inputs += unreadable
        report.inputs += len(sizes)
        if shard in counts and len(sizes) < counts[shard]:
            report.short_shards.append(f"{shard}: {len(sizes)} samples in the tar, {counts[shard]} in manifest.json")
        if shard not in done:
            report.shards_not_done.append(shard)
            if shard in index.partial:
                report.partial_shards.append(f"{shard}: {index.partial[shard].read_error}")
        masks = _check_rows(shard, rows, sizes, report)
        if results is not None:
            _check_coco(shard, results, masks, report)
        elif masks:
            report.coco_problems.append(f"{shard}: no coco.json")
    report.duplicate_input_keys = _repeated_keys(inputs)
    # Shards outside the checked inputs are not its concern.
    report.failed_shards = [f"{f['shard']}: {f['reason']}" for f in out.failures() if f["shard"] in inputs]
    return report


def report_json(report: VerifyReport) -> str:
    data = {k: (dict(v) if isinstance(v, Counter) else v) for k, v in report.__dict__.items()}
    return json.dumps({"ok": report.ok, **data}, indent=1)
