"""PASCAL Context, 59 classes plus background, in the layout mmsegmentation converts it into.

Where things are looked for (`root` is VOCdevkit or VOCdevkit/VOC2010): images
VOC2010/JPEGImages/{name}.jpg, GT VOC2010/SegmentationClassContext/{name}.png (0 = background,
1..59 = the classes of configs/classes/pc59.txt), names from
VOC2010/ImageSets/SegmentationContext/{split}.txt. Masks are stored as they are, so the same
shards serve both presets: `pc60` scores 0..59 with 0 as its background class, `pc59` reduces 0
to ignore and 1..59 to 0..58. Image-level labels are the ids 1..59 present.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from nerve_core.errors import NotFound
from pipeline.sources.idtable import IdTable
from pipeline.sources.pairs import Pair, check_split, pair_samples
from pipeline.sources.shard_writer import ShardSample
from pipeline.sources.skips import SkipLog
from pipeline.sources.voc import find_voc_dir, read_name_list

SPLITS = ("train", "val")
CONTEXT_IDS = IdTable.classes(60, background=0)


def context_samples(root: str | Path, split: str, skips: SkipLog) -> Iterator[ShardSample]:
    """One sample per listed image: JPEG bytes as stored, GT as stored, labels = classes present."""
    check_split(split, SPLITS, "PASCAL Context")
    voc = find_voc_dir(root, "VOC2010")
    listing = voc / "ImageSets" / "SegmentationContext" / f"{split}.txt"
    if not listing.is_file():
        raise NotFound(f"split list {listing} not found (made by mmsegmentation's PASCAL Context converter; README)")
    masks = voc / "SegmentationClassContext"
    pairs = (Pair(name, voc / "JPEGImages" / f"{name}.jpg", masks / f"{name}.png", CONTEXT_IDS)
             for name in read_name_list(listing))
    return pair_samples(pairs, f"pascal_context/{split}", skips)
