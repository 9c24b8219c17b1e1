"""Any folder of images, with optional GT masks in a parallel folder.

Images are found recursively under `images` (jpg, jpeg, png, webp, bmp, tif, tiff). The mask of
`images/a/b.jpg` is `masks/a/b.png`: a single-channel PNG of class ids (palette or grayscale),
255 = ignore. Keys are the relative path without suffix, made safe ("a/b" -> "a_b"); image ids
come from the same relative name (see naming.stable_image_id).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from nerve_core.errors import ConfigError, NotFound
from pipeline.output.pngcodec import encode_ground_truth_png
from pipeline.sources.files import (
    check_mask_ids,
    check_mask_size,
    labels_present,
    read_image,
    read_index_mask,
)
from pipeline.sources.naming import safe_key, stable_image_id
from pipeline.sources.shard_writer import ShardSample
from pipeline.sources.skips import SkipLog, collect

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
IGNORE = 255


def list_images(images: Path, exclude: Path | None = None) -> list[Path]:
    """Image files under `images`, relative, in a stable (sorted) order; `exclude` is skipped."""
    found = []
    for path in images.rglob("*"):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        if exclude is not None and path.is_relative_to(exclude):
            continue
        found.append(path.relative_to(images))
    return sorted(found, key=lambda p: p.as_posix())


def folder_samples(
    images: str | Path,
    skips: SkipLog,
    masks: str | Path | None = None,
    num_classes: int = 0,
    background_id: int = 0,
    require_masks: bool = True,
) -> Iterator[ShardSample]:
    """Samples for every image; with `masks`, GT and labels (ids present minus 255 and background).

    num_classes > 0 checks that mask ids are classes of the vocabulary; background_id < 0 means
    the vocabulary has no background class. An image without a mask is skipped when
    `require_masks`, else written without GT.
    """
    images = Path(images).resolve()
    if not images.is_dir():
        raise NotFound(f"image folder {images} not found")
    mask_dir = Path(masks).resolve() if masks else None
    if mask_dir is not None and not mask_dir.is_dir():
        raise NotFound(f"mask folder {mask_dir} not found")
    if mask_dir == images:
        raise ConfigError("masks must live in their own folder: same-stem .png masks beside the "
                         "images would be taken for images")
    exclude = {IGNORE} | ({background_id} if background_id >= 0 else set())

    def build(rel: Path) -> ShardSample:
        name = rel.with_suffix("").as_posix()
        image, ext, hw = read_image(images / rel)
        meta = {"image_id": stable_image_id(name), "source": "folder"}
        seg = None
        mask_path = mask_dir / rel.with_suffix(".png") if mask_dir is not None else None
        if mask_path is not None and (mask_path.is_file() or require_masks):
            mask = read_index_mask(mask_path)
            check_mask_size(mask, hw, mask_path)
            if num_classes > 0:
                check_mask_ids(mask, num_classes, mask_path, IGNORE)
            meta["labels"] = labels_present(mask, exclude=tuple(sorted(exclude)))
            seg = encode_ground_truth_png(mask)
        return ShardSample(safe_key(name), image, ext, seg, meta)

    return collect(list_images(images, exclude=mask_dir), build, skips, name=lambda p: p.as_posix())
