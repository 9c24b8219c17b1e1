"""Small dataset trees in each shard maker's real layout, all from the same bench photographs.

`nerve bench shards` times every maker on these trees: the same pictures as JPEG (PNG where the
dataset stores PNG: Cityscapes), with ground truth whose regions follow the picture
(pipeline.bench.photos.ground_truth) and whose ids are valid for each dataset, so no sample is
skipped and each maker does its full per-image work. The PNG writers are shared with the tests.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from pipeline.bench.photos import JPEG_QUALITY, bench_photo, ground_truth
from pipeline.sources.ade import ade_samples
from pipeline.sources.cityscapes import cityscapes_samples
from pipeline.sources.coco import coco_source
from pipeline.sources.coco_stuff import CLASSES as COCO_STUFF_RAW_IDS
from pipeline.sources.coco_stuff import coco_stuff_samples
from pipeline.sources.context import context_samples
from pipeline.sources.voc import voc_samples

CITY = "frankfurt"
COCO_CATEGORIES = {1: "person", 3: "car", 18: "dog", 44: "bottle", 62: "chair"}  # real COCO ids and names
INSTANCES_PER_IMAGE = 3


def save_palette_png(path: Path, ids: np.ndarray, seed: int = 7) -> None:
    """A mode-P PNG whose indices are `ids`; the palette is arbitrary colours, so any conversion
    through RGB or L would give values different from the ids."""
    rng = np.random.default_rng(seed)
    img = Image.fromarray(ids.astype(np.uint8), mode="P")
    img.putpalette(rng.integers(0, 256, size=768, dtype=np.uint8).tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def save_gray_png(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ids.astype(np.uint8), mode="L").save(path)


def _save_image(path: Path, image: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=JPEG_QUALITY) if path.suffix == ".jpg" else image.save(path)


@dataclass(frozen=True)
class Layout:
    """Where one dataset's tree lives under the trees folder, the split it is read as, the mask ids
    drawn for it (background first when it has one) and how its maker reads it."""

    folder: str
    split: str
    background: list[int]
    classes: list[int]
    read: Callable  # (root, split, skips) -> (samples, manifest extra)


def _no_extra(samples: Callable) -> Callable:
    return lambda root, split, skips: (samples(root, split, skips), {})


LAYOUTS = {
    "voc": Layout("VOCdevkit", "val", [0], list(range(1, 21)), _no_extra(voc_samples)),
    "ade": Layout("ADEChallengeData2016", "validation", [0], list(range(1, 151)), _no_extra(ade_samples)),
    "cityscapes": Layout("cityscapes", "val", [], list(range(34)), _no_extra(cityscapes_samples)),
    "coco_stuff": Layout("coco_stuff164k", "val2017", [], COCO_STUFF_RAW_IDS, _no_extra(coco_stuff_samples)),
    "context": Layout("VOCdevkit", "val", [0], list(range(1, 60)), _no_extra(context_samples)),
    "coco": Layout("coco", "val2017", [], [], coco_source),
}


def _mask(image: Image.Image, layout: Layout, rng: np.random.Generator) -> np.ndarray:
    drawn = rng.choice(layout.classes, size=3, replace=False)
    return ground_truth(image, [*layout.background, *sorted(int(c) for c in drawn)], rng)


def _polygon(rng: np.random.Generator, width: int, height: int) -> list[float]:
    """A convex hexagon somewhere in the image, as COCO's flat [x1, y1, x2, y2, ...]."""
    cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
    radius = rng.uniform(0.1, 0.3) * min(width, height)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 6))
    points = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)
    return np.round(np.clip(points, 0, [width - 1, height - 1]), 1).ravel().tolist()


def _coco_instances(sizes: list[tuple[int, int]], rng: np.random.Generator) -> dict:
    images, annotations = [], []
    for image_id, (width, height) in enumerate(sizes, start=1):
        images.append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "width": width, "height": height})
        for _ in range(INSTANCES_PER_IMAGE):
            polygon = _polygon(rng, width, height)
            xs, ys = polygon[0::2], polygon[1::2]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "iscrowd": 0,
                                "category_id": int(rng.choice(list(COCO_CATEGORIES))), "segmentation": [polygon],
                                "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)],
                                "area": 0.5 * (max(xs) - min(xs)) * (max(ys) - min(ys))})
    categories = [{"id": i, "name": name, "supercategory": name} for i, name in COCO_CATEGORIES.items()]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_trees(trees: Path, images: int, width: int, height: int, seed: int = 0) -> dict[str, Path]:
    """Write `images` samples in every layout under `trees`; return maker -> root to read from."""
    rng = np.random.default_rng(seed)
    voc, context = trees / "VOCdevkit" / "VOC2012", trees / "VOCdevkit" / "VOC2010"
    ade, stuff, city = trees / "ADEChallengeData2016", trees / "coco_stuff164k", trees / "cityscapes"
    names, sizes = [f"2008_{i:06d}" for i in range(images)], []
    for i, name in enumerate(tqdm(names, desc="bench trees", unit="image", leave=False)):
        image, _ = bench_photo(seed, i, 2, size_hw=(height, width))
        sizes.append(image.size)
        _save_image(voc / "JPEGImages" / f"{name}.jpg", image)
        save_palette_png(voc / "SegmentationClass" / f"{name}.png", _mask(image, LAYOUTS["voc"], rng))
        _save_image(context / "JPEGImages" / f"{name}.jpg", image)
        save_gray_png(context / "SegmentationClassContext" / f"{name}.png", _mask(image, LAYOUTS["context"], rng))
        _save_image(ade / "images" / "validation" / f"ADE_val_{i + 1:08d}.jpg", image)
        save_gray_png(ade / "annotations" / "validation" / f"ADE_val_{i + 1:08d}.png", _mask(image, LAYOUTS["ade"], rng))
        _save_image(stuff / "images" / "val2017" / f"{i + 1:012d}.jpg", image)
        save_gray_png(stuff / "annotations" / "val2017" / f"{i + 1:012d}.png", _mask(image, LAYOUTS["coco_stuff"], rng))
        stem = f"{CITY}_{i:06d}_000019"
        _save_image(city / "leftImg8bit" / "val" / CITY / f"{stem}_leftImg8bit.png", image)
        save_gray_png(city / "gtFine" / "val" / CITY / f"{stem}_gtFine_labelIds.png", _mask(image, LAYOUTS["cityscapes"], rng))
        _save_image(trees / "coco" / "val2017" / f"{i + 1:012d}.jpg", image)
    for lists in (voc / "ImageSets" / "Segmentation", context / "ImageSets" / "SegmentationContext"):
        lists.mkdir(parents=True, exist_ok=True)
        (lists / "val.txt").write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
    annotations = trees / "coco" / "annotations" / "instances_val2017.json"
    annotations.parent.mkdir(parents=True, exist_ok=True)
    annotations.write_text(json.dumps(_coco_instances(sizes, rng)), encoding="utf-8")
    return {maker: trees / layout.folder for maker, layout in LAYOUTS.items()}
