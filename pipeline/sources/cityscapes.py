"""Cityscapes fine annotations -> the 19 evaluation classes as train ids (0..18, 255 = ignored).

Where things are looked for (`root` holds leftImg8bit/ and gtFine/): images
leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png, GT gtFine/{split}/{city}/{stem}_gtFine_labelIds.png
(the official label ids 0..33). The other gtFine files (_color, _instanceIds, _polygons.json, and
_labelTrainIds made by the official scripts) are never read: labelIds are converted here by the
official label table, below. License plates (label id -1) are never drawn into labelIds files;
a 255 is taken as -1 and stays ignored.
The test split's public GT holds no evaluation classes: its shards keep the images and a mask that
converts to all 255, so they can be labeled but give no score (labels are empty).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pipeline.sources.idtable import IGNORE, IdTable
from pipeline.sources.pairs import Pair, check_split, files_by_stem, pair_samples
from pipeline.sources.shard_writer import ShardSample
from pipeline.sources.skips import SkipLog

SPLITS = ("train", "val", "test")
IMAGE_SUFFIX, GT_SUFFIX = "_leftImg8bit.png", "_gtFine_labelIds.png"
# (label id, name) of the 19 evaluated classes, in train-id order (configs/classes/cityscapes.txt).
EVALUATED = ((7, "road"), (8, "sidewalk"), (11, "building"), (12, "wall"), (13, "fence"), (17, "pole"),
             (19, "traffic light"), (20, "traffic sign"), (21, "vegetation"), (22, "terrain"), (23, "sky"),
             (24, "person"), (25, "rider"), (26, "car"), (27, "truck"), (28, "bus"), (31, "train"),
             (32, "motorcycle"), (33, "bicycle"))
LABEL_IDS = range(34)  # unlabeled 0 .. bicycle 33; the 15 not in EVALUATED become 255
CITYSCAPES_IDS = IdTable({label_id: train_id for train_id, (label_id, _) in enumerate(EVALUATED)},
                         [*LABEL_IDS, IGNORE], {IGNORE}, "the label ids 0..33 or 255")


def cityscapes_samples(root: str | Path, split: str, skips: SkipLog) -> Iterator[ShardSample]:
    """One sample per leftImg8bit image of the split: PNG bytes as stored, GT in train ids."""
    check_split(split, SPLITS, "Cityscapes")
    root = Path(root)
    images = files_by_stem(root / "leftImg8bit" / split, f"*/*{IMAGE_SUFFIX}", IMAGE_SUFFIX,
                           "give the Cityscapes root that holds leftImg8bit/ and gtFine/")
    gt = root / "gtFine" / split
    pairs = (Pair(stem, path, gt / path.parent.name / f"{stem}{GT_SUFFIX}", CITYSCAPES_IDS) for stem, path in images)
    return pair_samples(pairs, f"cityscapes/{split}", skips)
