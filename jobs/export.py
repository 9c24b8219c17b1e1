"""`nerve export png|coco output.dir=OUT to=...`: a labeling run's outputs as files trainers read.

    nerve export png output.dir=OUT to=DIR [confidence_threshold=0..1]
        DIR/{key}.png for every ok row: mode-P PNGs with the VOC palette, the layout of
        SegmentationClassAug that WSSS trainers read. With confidence_threshold > 0 (needs a run
        made with output.confidence=true), pixels whose top-class probability is below it become
        255 (ignore). DIR/skipped.json lists the rows left out (error rows, bad masks).
    nerve export coco output.dir=OUT to=FILE
        FILE: a COCO results list (what COCO.loadRes and COCOeval read): one result per (image,
        class present), background and ignore left out, `category_id` the dataset's own COCO
        category id (from the manifest.json that `nerve shards coco` writes beside the input
        shards; the run's class id where the shards have no such mapping), `score` the mean
        top-class probability over the result's pixels for runs made with output.confidence=true,
        else 1.0. Beside it, FILE with suffix ".images.json" (results.json -> results.images.json):
        {"images", "categories" (the whole vocabulary but background), "annotations": []}, a
        minimal ground-truth object for the same image ids, so that COCO(sidecar).loadRes(FILE)
        works without the dataset.

Only done shards are read (pipeline/output/outputdir.py says what done means); the others are reported.
OUT may be local or remote (fsspec URL); the export target is a local path.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import MISSING

from jobs.config import ConfigError, command, load_object, parse_argv
from pipeline.output.outputdir import OutputDir
from pipeline.output.pngcodec import decode_index_png, encode_index_png
from pipeline.output.writers import coco_results
from pipeline.read.prefetch import read_ahead
from pipeline.read.shardlist import expand_shards, read_manifests
from pipeline.report.palette import voc_palette
from pipeline.sources.naming import safe_key
from pipeline.storage import atomic_write_local

IGNORE = 255
ROW_COLUMNS = ["key", "shard", "image_id", "status", "error", "height", "width", "mask_png"]


@dataclass
class RunDir:
    dir: str = ""  # the labeling run's output directory (OUT)


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


def drop_unconfident(mask: np.ndarray, confidence: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels whose quantised top-class probability (uint8, p * 255) is below `threshold` -> 255."""
    if confidence.shape != mask.shape:
        raise ValueError(f"confidence map {confidence.shape} does not match mask {mask.shape}")
    return np.where(confidence.astype(np.float64) / 255.0 < threshold, IGNORE, mask).astype(np.uint8)


@dataclass
class RunShards:
    """The done shards of an output directory, and the labeled ones that are not done."""

    out: OutputDir
    done: list[str]
    unfinished: list[str]

    @classmethod
    def open(cls, out_dir: str) -> RunShards:
        out = OutputDir(out_dir)
        out.existing_record()
        done = out.done_shards()
        return cls(out, sorted(done), [s for s in out.labeled_shards() if s not in done])

    def num_rows(self) -> int:
        return sum(read_ahead(self.out.num_rows, self.done))

    def rows(self, extra_columns: tuple[str, ...] = ()) -> Iterator[dict]:
        """Every row of the done shards, in shard order, the next shards read while one is exported;
        columns a shard lacks are absent."""
        columns = [*ROW_COLUMNS, *extra_columns]
        for rows in read_ahead(lambda shard: list(self.out.rows(shard, columns)), self.done):
            yield from rows

    def has_column(self, column: str) -> bool:
        return all(column in names for names in read_ahead(self.out.columns, self.done))

    def has_confidence(self) -> bool:
        """Whether the run stored confidence maps: output.confidence as OUT/config.yaml records it (the
        column exists, all null, in a run without them)."""
        return self.has_column("confidence_png") and self.out.existing_record().config.output.confidence


def _skip(row: dict, reason: str, detail: str = "") -> dict:
    return {"key": row.get("key"), "shard": row.get("shard"), "reason": reason, "detail": detail}


def export_png(run: RunShards, target: Path, threshold: float = 0.0, progress: bool = True) -> dict:
    """Write target/{safe key}.png for every ok row; return {"written", "skipped": [...]}."""
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"confidence_threshold must be in [0, 1], got {threshold}")
    if threshold > 0 and not run.has_confidence():
        raise ConfigError(f"confidence_threshold needs confidence maps, and {run.out.url} was labeled without them "
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
            mask = decode_index_png(row["mask_png"])
            if threshold > 0:
                mask = drop_unconfident(mask, decode_index_png(row["confidence_png"]), threshold)
        except (OSError, ValueError, TypeError) as exc:
            skipped.append(_skip(row, "undecodable mask", repr(exc)))
            continue
        atomic_write_local(path, encode_index_png(mask, palette=_PALETTE))
        names.add(name)
        written += 1
    return {"written": written, "skipped": skipped}


def shard_categories(shards) -> dict[int, dict] | None:
    """class id -> {"id", "name"} from the manifest.json of the input shards `shards` (`nerve shards
    coco`), or None when they carry no category mapping or cannot be listed any more."""
    try:
        urls = expand_shards(shards)
    except (TypeError, ValueError, OSError):
        return None
    tables = {json.dumps(m["coco_categories"], sort_keys=True) for m in read_manifests(urls) if "coco_categories" in m}
    if len(tables) > 1:
        raise ValueError("the input shards come from COCO splits with different category lists")
    if not tables:
        return None
    return {int(e["class_id"]): {"id": int(e["id"]), "name": e["name"]} for e in json.loads(tables.pop())}


def run_categories(out: OutputDir) -> dict[int, dict]:
    """class id -> COCO category {"id", "name"} for every class of the run's vocabulary but background."""
    record = out.existing_record()
    names = record.class_names
    background = record.config.engine.background.class_id
    wanted = [c for c in range(len(names)) if c != background]
    mapping = shard_categories(record.config.input.shards)
    if mapping is None:
        return {c: {"id": c, "name": names[c]} for c in wanted}
    if sorted(mapping) != wanted:
        raise ValueError(f"the run's vocabulary ({len(wanted)} classes besides background) does not match the "
                         f"{len(mapping)} COCO categories in its shards' manifest.json: label with the "
                         "vocabulary the shards were made for (dataset=coco_object)")
    return mapping


def scored_results(image_id: int, mask: np.ndarray, confidence: np.ndarray | None, categories: dict[int, dict]) -> list[dict]:
    """COCO results of one mask: classes without a category (background) dropped, ids mapped,
    `score` = mean quantised confidence over the result's pixels (1.0 without confidence)."""
    results = []
    for result in coco_results(image_id, mask):
        category = categories.get(result["category_id"])
        if category is None:
            continue
        pixels = mask == result["category_id"]
        score = 1.0 if confidence is None else round(float(confidence[pixels].mean()) / 255.0, 6)
        results.append(dict(result, category_id=category["id"], score=score))
    return results


def sidecar_path(results_file: Path) -> Path:
    return results_file.with_suffix(".images.json")


def export_coco(run: RunShards, results_file: Path) -> dict:
    """Write the results list and its images sidecar; return counts and what was skipped."""
    categories = run_categories(run.out)
    results, images, skipped = [], [], []
    extra = ("confidence_png",) if run.has_column("confidence_png") else ()
    for row in run.rows(extra):
        if row["status"] != "ok":
            skipped.append(_skip(row, "error row", row.get("error") or ""))
            continue
        try:
            mask = decode_index_png(row["mask_png"])
            confidence = decode_index_png(row["confidence_png"]) if row.get("confidence_png") else None
        except (OSError, ValueError, TypeError) as exc:
            skipped.append(_skip(row, "undecodable mask", repr(exc)))
            continue
        images.append({"id": int(row["image_id"]), "file_name": row["key"],
                       "height": int(row["height"]), "width": int(row["width"])})
        results.extend(scored_results(int(row["image_id"]), mask, confidence, categories))
    results_file = results_file.resolve()
    results_file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_local(results_file, json.dumps(results).encode("utf-8"))
    sidecar = {"images": images, "categories": [categories[c] for c in sorted(categories)], "annotations": []}
    atomic_write_local(sidecar_path(results_file), json.dumps(sidecar).encode("utf-8"))
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
        atomic_write_local(target.resolve() / "skipped.json", json.dumps(summary["skipped"], indent=1).encode("utf-8"))
        print(f"wrote {summary['written']} label PNGs to {target}")
    else:
        summary = export_coco(run, Path(cfg.to))
        print(f"wrote {summary['results']} results for {summary['images']} images to {cfg.to} "
              f"(images: {sidecar_path(Path(cfg.to))})")
    if run.unfinished:
        print(f"not exported, not done (no complete stats.json, or partial): {', '.join(run.unfinished)}")
    print(f"skipped: {len(summary['skipped'])}")
    _report(summary["skipped"])
    return 0
