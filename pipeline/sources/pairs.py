"""Samples from image files paired with GT mask files: the loop every benchmark maker shares.

A maker only says where its images and masks are and how its mask values map to class ids (an
IdTable); reading, checking, converting and skipping are done here, the same way for all of them.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from nerve_core.errors import ConfigError, NotFound
from pipeline.output.pngcodec import encode_ground_truth_png
from pipeline.sources.files import check_mask_size, read_image, read_mask_file
from pipeline.sources.idtable import IdTable
from pipeline.sources.naming import safe_key, stable_image_id
from pipeline.sources.shard_writer import ShardSample
from pipeline.sources.skips import SkipLog, collect


@dataclass(frozen=True)
class Pair:
    name: str  # the image's stem: the sample key (made safe) and its image id
    image: Path
    mask: Path
    ids: IdTable


def pair_samples(pairs: Iterable[Pair], source: str, skips: SkipLog) -> Iterator[ShardSample]:
    """One sample per pair: image bytes as stored, GT converted by the pair's table, labels present."""

    def build(pair: Pair) -> ShardSample:
        image, ext, hw = read_image(pair.image)
        stored = read_mask_file(pair.mask)
        check_mask_size(stored.ids, hw, pair.mask)
        mask, labels = pair.ids.convert(stored.ids, pair.mask)
        kept = stored.gray8_png if pair.ids.identity else None  # already a grey PNG of class ids: stored as it is
        meta = {"image_id": stable_image_id(pair.name), "source": source, "labels": labels}
        return ShardSample(safe_key(pair.name), image, ext, kept or encode_ground_truth_png(mask), meta)

    return collect(pairs, build, skips, name=lambda pair: pair.name)


def files_by_stem(folder: Path, pattern: str, suffix: str, hint: str) -> list[tuple[str, Path]]:
    """(stem, path) of the files under `folder` matching `pattern`, the stem being the file name
    without `suffix`, sorted by stem; NotFound, with `hint` (what root to give), without `folder`."""
    if not folder.is_dir():
        raise NotFound(f"no {folder} ({hint})")
    found = [(path.name[: -len(suffix)], path) for path in folder.glob(pattern) if path.is_file()]
    return sorted(found)


def check_split(split: str, splits: tuple[str, ...], dataset: str) -> None:
    if split not in splits:
        raise ConfigError(f"unknown {dataset} split {split!r}; choose one of {', '.join(splits)}")


def images_and_annotations(root: str | Path, split: str, hint: str) -> tuple[list[tuple[str, Path]], Path]:
    """The layout ADE20K and COCO-Stuff share: ((stem, path) of root/images/{split}/*.jpg, the folder
    of their masks root/annotations/{split}/)."""
    root = Path(root)
    return files_by_stem(root / "images" / split, "*.jpg", ".jpg", hint), root / "annotations" / split
