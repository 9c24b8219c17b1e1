"""ADE20K SceneParsing (ADEChallengeData2016): `training` (20,210 images) and `validation` (2,000).

Where things are looked for (`root` is ADEChallengeData2016): images/{split}/{name}.jpg, GT
annotations/{split}/{name}.png (0 = other, 1..150 = the classes of configs/classes/ade.txt, shifted
by one). Masks are stored as they are: the `ade` dataset preset reduces 0 to ignore and 1..150 to
0..149 when it reads them. Image-level labels are the ids 1..150 present. Every image of the
split's folder is a sample; one without its mask is skipped.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pipeline.sources.idtable import IdTable
from pipeline.sources.pairs import Pair, check_split, images_and_annotations, pair_samples
from pipeline.sources.shard_writer import ShardSample
from pipeline.sources.skips import SkipLog

SPLITS = ("training", "validation")
ADE_IDS = IdTable.classes(151, background=0)  # 0 = other, then the 150 classes


def ade_samples(root: str | Path, split: str, skips: SkipLog) -> Iterator[ShardSample]:
    """One sample per image of images/{split}/, GT from annotations/{split}/."""
    check_split(split, SPLITS, "ADE20K")
    images, masks = images_and_annotations(root, split, "give ADEChallengeData2016")
    pairs = (Pair(name, path, masks / f"{name}.png", ADE_IDS) for name, path in images)
    return pair_samples(pairs, f"ade20k/{split}", skips)
