"""COCO-Stuff 164k -> the 171 contiguous classes of configs/classes/coco_stuff.txt (255 = unlabeled).

Where things are looked for (`root` holds images/ and annotations/): images/{split}/{name}.jpg, GT
annotations/{split}/{name}.png, the official stuffthingmaps: a pixel holds its COCO category id
minus one (0..181: things 0..89, stuff 91..181), 255 = unlabeled. COCO category ids 1..182 leave 11
thing ids unused (below); the other 171, in ascending order, are the class ids 0..170 (80 things,
then 91 stuff). An unused id found in a mask becomes 255.
A mask already converted to the 171 ids ({name}_labelTrainIds.png beside the raw one, as
mmsegmentation's converter writes it) is taken as it is, in place of the raw file.
Image-level labels are the classes present (no background: every id 0..170 is a class).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pipeline.sources.idtable import IGNORE, IdTable
from pipeline.sources.pairs import Pair, check_split, images_and_annotations, pair_samples
from pipeline.sources.shard_writer import ShardSample
from pipeline.sources.skips import SkipLog

SPLITS = ("train2017", "val2017")
NUM_CATEGORY_IDS = 182  # COCO category ids 1..182 (things 1..90, stuff 92..182)
UNUSED_CATEGORY_IDS = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91)  # never annotated
CLASSES = [cat - 1 for cat in range(1, NUM_CATEGORY_IDS + 1) if cat not in UNUSED_CATEGORY_IDS]  # raw value per class id
RAW_IDS = IdTable({raw: class_id for class_id, raw in enumerate(CLASSES)}, [*range(NUM_CATEGORY_IDS), IGNORE],
                  {IGNORE}, "the category ids - 1 (0..181) or 255")
CONVERTED_IDS = IdTable.classes(len(CLASSES))
CONVERTED_SUFFIX = "_labelTrainIds.png"


def gt_pair(name: str, image: Path, masks: Path) -> Pair:
    """The converted mask where there is one, else the raw stuffthingmap."""
    converted = masks / f"{name}{CONVERTED_SUFFIX}"
    if converted.is_file():
        return Pair(name, image, converted, CONVERTED_IDS)
    return Pair(name, image, masks / f"{name}.png", RAW_IDS)


def coco_stuff_samples(root: str | Path, split: str, skips: SkipLog) -> Iterator[ShardSample]:
    """One sample per image of images/{split}/: JPEG bytes as stored, GT in the 171 class ids."""
    check_split(split, SPLITS, "COCO-Stuff")
    images, masks = images_and_annotations(root, split, "give the COCO-Stuff root that holds images/ and annotations/")
    return pair_samples((gt_pair(name, path, masks) for name, path in images), f"coco_stuff/{split}", skips)
