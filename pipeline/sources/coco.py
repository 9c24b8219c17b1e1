"""COCO instances -> semantic masks of the COCO-Object benchmark (81 classes).

Classes: 0 = background, the thing categories 1..80 in ascending COCO category id (person=1,
bicycle=2, ..., toothbrush=80), the order of configs/classes/coco_object.txt.

Rasterisation, per image, with pycocotools' annToMask:
- non-crowd instances are painted in annotation-file order and a later instance overwrites an
  earlier one where they overlap. This is how the COCO-Stuff helper
  (cocoSegmentationToSegmentationMap) flattens instances, and COCO-Object GT is the COCO-Stuff
  thing map with stuff set to 0.
- crowd regions (iscrowd=1) become 255 (ignore) except where a non-crowd instance covers them:
  a crowd mask marks "many objects, not delineated", so its pixels are neither background nor a
  reliable class, while an explicit instance on top of it is.
Image-level labels are the thing classes present in the final mask (ids other than 0 and 255), so
they always agree with the GT the labels are scored against. COCO image ids are kept.
Layout: images in root/{split}/, annotations in root/annotations/instances_{split}.json.
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from nerve_core.errors import ConfigError, NotFound
from pipeline.output.pngcodec import encode_ground_truth_png
from pipeline.sources.files import (
    SkipSample,
    check_mask_size,
    labels_present,
    read_image,
)
from pipeline.sources.naming import safe_key
from pipeline.sources.pairs import check_split
from pipeline.sources.shard_writer import ShardSample
from pipeline.sources.skips import SkipLog, collect

SPLITS = ("train2014", "val2014", "train2017", "val2017")
BACKGROUND, IGNORE = 0, 255


def load_instances(path: Path) -> COCO:
    if not path.is_file():
        raise NotFound(f"annotations {path} not found")
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints timing chatter
        return COCO(str(path))


def contiguous_ids(coco: COCO) -> dict[int, int]:
    """COCO category id -> class id 1..K in ascending category id (background is 0)."""
    cat_ids = sorted(coco.getCatIds())
    if len(cat_ids) >= IGNORE:
        raise ConfigError(f"{len(cat_ids)} categories do not fit in uint8 class ids below {IGNORE}")
    return {cat: i + 1 for i, cat in enumerate(cat_ids)}


def semantic_mask(coco: COCO, image_id: int, class_of: dict[int, int]) -> np.ndarray:
    """(H, W) uint8 class ids of one image under the rule in the module docstring."""
    info = coco.imgs[image_id]
    mask = np.zeros((info["height"], info["width"]), dtype=np.uint8)
    covered = np.zeros(mask.shape, dtype=bool)
    crowd = np.zeros(mask.shape, dtype=bool)
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=None)):
        region = coco.annToMask(ann).astype(bool)
        if ann.get("iscrowd", 0):
            crowd |= region
        else:
            mask[region] = class_of[ann["category_id"]]
            covered |= region
    mask[crowd & ~covered] = IGNORE
    return mask


def category_table(coco: COCO, class_of: dict[int, int]) -> list[dict]:
    """[{"class_id", "id", "name"}] in class-id order: how a mask's class ids map back to the
    dataset's own COCO category ids (recorded in manifest.json, read by `nerve export coco`)."""
    return [{"class_id": class_id, "id": int(cat), "name": coco.cats[cat]["name"]}
            for cat, class_id in sorted(class_of.items(), key=lambda item: item[1])]


def coco_source(root: str | Path, split: str, skips: SkipLog) -> tuple[Iterator[ShardSample], dict]:
    """(one sample per image in the instances file, manifest fields {"coco_categories": ...}).

    Images without annotations are all background.
    """
    check_split(split, SPLITS, "COCO")
    root = Path(root)
    coco = load_instances(root / "annotations" / f"instances_{split}.json")
    class_of = contiguous_ids(coco)
    image_dir = root / split
    source = f"coco/{split}"

    def build(image_id: int) -> ShardSample:
        file_name = coco.imgs[image_id]["file_name"]
        image_path = image_dir / file_name
        image, ext, hw = read_image(image_path)
        try:
            mask = semantic_mask(coco, image_id, class_of)
        except (KeyError, ValueError, TypeError) as exc:
            raise SkipSample("bad annotation", f"image {image_id}: {exc!r}") from exc
        check_mask_size(mask, hw, image_path)
        meta = {"image_id": int(image_id), "source": source,
                "labels": labels_present(mask, exclude=(BACKGROUND, IGNORE))}
        return ShardSample(safe_key(Path(file_name).stem), image, ext, encode_ground_truth_png(mask), meta)

    def name(image_id: int) -> str:
        return coco.imgs[image_id].get("file_name", str(image_id))

    samples = collect(sorted(coco.getImgIds()), build, skips, name=name)
    return samples, {"coco_categories": category_table(coco, class_of)}
