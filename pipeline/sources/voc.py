"""PASCAL VOC 2012 segmentation: `train` / `val` and the SBD-augmented `train_aug`.

Where things are looked for (`root` is VOCdevkit or VOCdevkit/VOC2012):
- images: VOC2012/JPEGImages/{name}.jpg
- train, val: the list ImageSets/Segmentation/{split}.txt (1,464 / 1,449 names), GT from
  SegmentationClass/{name}.png (palette PNGs; the indices are the class ids, 255 = border).
- train_aug: GT from SegmentationClassAug/{name}.png, that folder being VOC2012/SegmentationClassAug
  or VOCdevkit/SegmentationClassAug; the list (10,582 names) is the first that exists of
  VOC2012/ImageSets/SegmentationAug/train_aug.txt and {SegmentationClassAug}/train_aug.txt.
  List lines may be bare names or "/JPEGImages/x.jpg /SegmentationClassAug/x.png" pairs.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from nerve_core.errors import NotFound
from pipeline.sources.idtable import IdTable
from pipeline.sources.pairs import Pair, check_split, pair_samples
from pipeline.sources.shard_writer import ShardSample
from pipeline.sources.skips import SkipLog

SPLITS = ("train", "val", "train_aug")
NUM_CLASSES = 21  # background + 20 object classes
VOC_IDS = IdTable.classes(NUM_CLASSES, background=0)
AUG_DIR = "SegmentationClassAug"


def find_voc_dir(root: str | Path, year: str = "VOC2012") -> Path:
    """The VOC{year} directory (the one holding JPEGImages/), given VOCdevkit or that directory itself."""
    root = Path(root)
    for candidate in (root / year, root):
        if (candidate / "JPEGImages").is_dir():
            return candidate
    raise NotFound(f"no {year}/JPEGImages under {root} (give VOCdevkit or {year})")


def read_name_list(path: Path) -> list[str]:
    """Image names from a split list: the stem of the first token of every non-empty line."""
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            names.append(Path(line.split()[0]).stem)
    return names


def split_plan(root: str | Path, split: str) -> tuple[Path, list[str], Path]:
    """(VOC2012 dir, image names of `split`, directory holding their GT PNGs)."""
    check_split(split, SPLITS, "VOC")
    voc = find_voc_dir(root)
    if split in ("train", "val"):
        listing = voc / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not listing.is_file():
            raise NotFound(f"split list {listing} not found")
        return voc, read_name_list(listing), voc / "SegmentationClass"
    aug_dirs = [d for d in (voc / AUG_DIR, voc.parent / AUG_DIR) if d.is_dir()]
    if not aug_dirs:
        raise NotFound(f"train_aug needs {AUG_DIR}/ in {voc} or {voc.parent}")
    lists = [voc / "ImageSets" / "SegmentationAug" / "train_aug.txt"]
    lists += [d / "train_aug.txt" for d in aug_dirs]
    listing = next((p for p in lists if p.is_file()), None)
    if listing is None:
        raise NotFound("train_aug list not found; looked for " + ", ".join(map(str, lists)))
    return voc, read_name_list(listing), aug_dirs[0]


def voc_samples(root: str | Path, split: str, skips: SkipLog) -> Iterator[ShardSample]:
    """One sample per listed image: JPEG bytes as stored, raw-index GT, labels = objects present."""
    voc, names, mask_dir = split_plan(root, split)
    pairs = (Pair(name, voc / "JPEGImages" / f"{name}.jpg", mask_dir / f"{name}.png", VOC_IDS) for name in names)
    return pair_samples(pairs, f"voc2012/{split}", skips)
