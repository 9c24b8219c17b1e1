"""`nerve export png|coco output.dir=OUT to=...`: a labeling run's outputs as files trainers read.

    nerve export png output.dir=OUT to=DIR [confidence_threshold=0..1]
        DIR/{key}.png for every ok row: mode-P PNGs with the VOC palette, the layout of
        SegmentationClassAug that WSSS trainers read. With confidence_threshold > 0 (needs a run
        made with output.confidence=true), pixels whose top-class probability is below it become
        255 (ignore). DIR/skipped.json lists the rows left out (error rows, bad masks).
    nerve export coco output.dir=OUT to=FILE
        FILE: the merged OUT/shards/*.coco.json result lists, still a plain list so that
        COCO.loadRes(FILE) reads it. Beside it, FILE with suffix ".images.json" (results.json ->
        results.images.json): {"images", "categories", "annotations": []}, a minimal ground-truth
        object for the same image ids, so COCO(sidecar).loadRes(FILE) works without the dataset.

Only shards with a done marker (OUT/shards/{shard}.stats.json) are read; unfinished shards are
reported. OUT may be local or remote (fsspec URL); the export target is a local path.
"""
from __future__ import annotations

import io
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow.parquet as pq
import yaml
from omegaconf import MISSING
from PIL import Image

from configs import classes_path
from jobs.config import ConfigError, command, load_object, parse_argv
from nerve_core.errors import NotFound
from nerve_core.vocab import Vocabulary
from pipeline.outputdir import read_job_record
from pipeline.report.palette import voc_palette
from pipeline.sources.naming import safe_key
from pipeline.storage import filesystem, join

IGNORE = 255
ROW_COLUMNS = ["key", "shard", "image_id", "status", "error", "height", "width", "mask_png"]


@dataclass
class RunDir:
    dir: str = MISSING  # the labeling run's output directory (OUT)


@dataclass
class PngExport:
    output: RunDir = field(default_factory=RunDir)
    to: str = MISSING  # directory for {key}.png
    confidence_threshold: float = 0.0  # 0 keeps every pixel
    progress: bool = True


@dataclass
class CocoExport:
    output: RunDir = field(default_factory=RunDir)
    to: str = MISSING  # results JSON file


_PALETTE = voc_palette()


def decode_png(data: bytes) -> np.ndarray:
    """Raw values of a single-channel PNG (palette indices stay indices)."""
    with Image.open(io.BytesIO(data)) as img:
        return np.array(img)


def encode_label_png(mask: np.ndarray) -> bytes:
    img = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8), mode="P")
    img.putpalette(_PALETTE)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def drop_unconfident(mask: np.ndarray, confidence: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels whose quantised top-class probability (uint8, p * 255) is below `threshold` -> 255."""
    if confidence.shape != mask.shape:
        raise ValueError(f"confidence map {confidence.shape} does not match mask {mask.shape}")
    return np.where(confidence.astype(np.float64) / 255.0 < threshold, IGNORE, mask).astype(np.uint8)


@dataclass
class RunShards:
    """The shards of a run directory: done ones (stats marker present) and unfinished ones."""

    fs: object
    root: str
    done: list[str]
    unfinished: list[str]

    @classmethod
    def open(cls, out_dir: str) -> "RunShards":
        fs, root = filesystem(out_dir)
        shard_dir = join(root, "shards")
        if not fs.isdir(shard_dir):
            raise NotFound(f"{out_dir} has no shards/ directory: not a labeling run")
        stems = sorted(Path(p).name[: -len(".parquet")] for p in fs.glob(join(shard_dir, "*.parquet")))
        done = [s for s in stems if fs.exists(join(shard_dir, f"{s}.stats.json"))]
        return cls(fs, root, done, [s for s in stems if s not in done])

    def path(self, shard: str, suffix: str) -> str:
        return join(self.root, "shards", f"{shard}{suffix}")

    def parquet(self, shard: str) -> pq.ParquetFile:
        return pq.ParquetFile(self.fs.open(self.path(shard, ".parquet"), "rb"))

    def num_rows(self) -> int:
        return sum(self.parquet(s).metadata.num_rows for s in self.done)

    def rows(self, extra_columns: tuple[str, ...] = ()) -> Iterator[dict]:
        """Every row of the done shards, in shard order; columns a shard lacks are absent."""
        for shard in self.done:
            parquet = self.parquet(shard)
            names = set(parquet.schema_arrow.names)
            columns = [c for c in [*ROW_COLUMNS, *extra_columns] if c in names]
            for batch in parquet.iter_batches(batch_size=256, columns=columns):
                yield from batch.to_pylist()

    def has_column(self, column: str) -> bool:
        return all(column in self.parquet(s).schema_arrow.names for s in self.done)

    def has_confidence(self) -> bool:
        """Whether the run stored confidence maps: output.confidence as OUT/config.yaml records it (the
        column exists, all null, in a run without them), else whether the column exists."""
        recorded = ((read_job_record(self.fs, self.root) or {}).get("config") or {}).get("output", {})
        return self.has_column("confidence_png") and bool(recorded.get("confidence", True))


def _atomic_local_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _skip(row: dict, reason: str, detail: str = "") -> dict:
    return {"key": row.get("key"), "shard": row.get("shard"), "reason": reason, "detail": detail}


def export_png(run: RunShards, target: Path, threshold: float = 0.0, progress: bool = True) -> dict:
    """Write target/{safe key}.png for every ok row; return {"written", "skipped": [...]}."""
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"confidence_threshold must be in [0, 1], got {threshold}")
    if threshold > 0 and not run.has_confidence():
        raise ConfigError(f"confidence_threshold needs confidence maps, and {run.root} was labeled without them "
                          "(output.confidence=false in its config.yaml): relabel with output.confidence=true")
    target = target.resolve()
    target.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    written, skipped, names = 0, [], set()
    extra = ("confidence_png",) if threshold > 0 else ()
    for row in tqdm(run.rows(extra), total=run.num_rows(), desc="export png", unit="img",
                    disable=not progress, leave=False):
        if row["status"] != "ok":
            skipped.append(_skip(row, "error row", row.get("error") or ""))
            continue
        name = f"{safe_key(row['key'])}.png"
        path = target / name
        if name in names or path.parent != target:
            skipped.append(_skip(row, "duplicate key", name))
            continue
        try:
            mask = decode_png(row["mask_png"])
            if threshold > 0:
                mask = drop_unconfident(mask, decode_png(row["confidence_png"]), threshold)
        except (OSError, ValueError, TypeError) as exc:
            skipped.append(_skip(row, "undecodable mask", repr(exc)))
            continue
        _atomic_local_write(path, encode_label_png(mask))
        names.add(name)
        written += 1
    return {"written": written, "skipped": skipped}


def class_names(run: RunShards) -> list[str] | None:
    """Display names of the run's vocabulary, if OUT/config.yaml ({"config": job config,
    "fingerprint": ...}) names a class file that can be found here (`dataset.classes`)."""
    try:
        with run.fs.open(join(run.root, "config.yaml"), "rb") as f:
            record = yaml.safe_load(f.read()) or {}
        classes = record["config"]["dataset"]["classes"]
        return Vocabulary.from_file(classes_path(str(classes))).names
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return None


def sidecar_path(results_file: Path) -> Path:
    return results_file.with_suffix(".images.json")


def export_coco(run: RunShards, results_file: Path) -> dict:
    """Write the merged results list and its images sidecar; return counts and what was skipped."""
    results, skipped = [], []
    for shard in run.done:
        path = run.path(shard, ".coco.json")
        if not run.fs.exists(path):
            skipped.append({"shard": shard, "reason": "missing coco.json", "detail": path})
            continue
        with run.fs.open(path, "rb") as f:
            results.extend(json.load(f))
    images = []
    for row in run.rows():
        if row["status"] == "ok":
            images.append({"id": int(row["image_id"]), "file_name": row["key"],
                           "height": int(row["height"]), "width": int(row["width"])})
        else:
            skipped.append(_skip(row, "error row", row.get("error") or ""))
    names = class_names(run) or []
    category_ids = sorted({int(r["category_id"]) for r in results})
    categories = [{"id": c, "name": names[c] if c < len(names) else f"class {c}"} for c in category_ids]
    results_file = results_file.resolve()
    results_file.parent.mkdir(parents=True, exist_ok=True)
    _atomic_local_write(results_file, json.dumps(results).encode("utf-8"))
    sidecar = {"images": images, "categories": categories, "annotations": []}
    _atomic_local_write(sidecar_path(results_file), json.dumps(sidecar).encode("utf-8"))
    return {"results": len(results), "images": len(images), "skipped": skipped}


def _report(skipped: list[dict]) -> None:
    for entry in skipped[:20]:
        print(f"  - {entry.get('key') or entry.get('shard')}: {entry['reason']} {entry['detail']}".rstrip())
    if len(skipped) > 20:
        print(f"  ... and {len(skipped) - 20} more")


SUBCOMMANDS = {
    "png": (PngExport, "one label PNG per sample (VOC palette, the SegmentationClassAug layout)"),
    "coco": (CocoExport, "one merged COCO results file, plus a minimal images file beside it"),
}


@command
def main(argv: list[str]) -> int:
    usage = "usage: nerve export {png,coco} output.dir=OUT to=DIR_OR_FILE [confidence_threshold=T]"
    args = parse_argv(argv)
    if len(args.positionals) != 1 or args.positionals[0] not in SUBCOMMANDS:
        raise ConfigError(f"nerve export needs png or coco; {usage}")
    kind = args.positionals[0]
    cfg = load_object(SUBCOMMANDS[kind][0], args.overrides, args.config_file)
    run = RunShards.open(cfg.output.dir)
    if kind == "png":
        target = Path(cfg.to)
        summary = export_png(run, target, cfg.confidence_threshold, cfg.progress)
        _atomic_local_write(target.resolve() / "skipped.json",
                            json.dumps(summary["skipped"], indent=1).encode("utf-8"))
        print(f"wrote {summary['written']} label PNGs to {target}")
    else:
        summary = export_coco(run, Path(cfg.to))
        print(f"wrote {summary['results']} results for {summary['images']} images to {cfg.to} "
              f"(images: {sidecar_path(Path(cfg.to))})")
    if run.unfinished:
        print(f"not exported, unfinished (no stats.json): {', '.join(run.unfinished)}")
    print(f"skipped: {len(summary['skipped'])}")
    _report(summary["skipped"])
    return 0
