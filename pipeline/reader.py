"""Read one WebDataset shard into decoded samples; undecodable samples become error records.

webdataset's tar iteration and key grouping do the reading (one pass, in order, no resampling);
decoding is ours because the contract is strict: images get their EXIF orientation applied and
become RGB, `seg.png` is read as raw class indices (never through a palette or RGB conversion),
`json` is metadata. A bad sample never stops the shard; a broken tar stops it after the samples
that could be read, and the caller records that.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
from fsspec.implementations.local import LocalFileSystem
from PIL import Image
from webdataset.tariterators import group_by_keys, tar_file_expander

from nerve_core.imageprep import to_rgb
from pipeline.storage import filesystem

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
# Modes whose pixel values are the class indices themselves.
_INDEX_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L")


@dataclass
class Sample:
    key: str
    image_id: int
    image: Image.Image | None = None  # RGB, EXIF orientation applied
    gt: np.ndarray | None = None  # (H, W) uint8 class ids, 255 = ignore
    meta: dict = field(default_factory=dict)
    error: str | None = None  # "reason: detail" when the sample could not be decoded

    @property
    def ok(self) -> bool:
        return self.error is None


def fallback_image_id(key: str) -> int:
    """A stable non-negative int64 id for samples whose json carries none."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big") >> 1


def raw_samples(url: str) -> Iterator[dict]:
    """The shard's samples as {"__key__": str, ext: bytes, ...}, in tar order.

    Raises whatever the tar layer raises when the shard itself is unreadable or truncated, after
    yielding every sample before the damage.
    """
    fs, path = filesystem(url)
    # Local files open directly: fsspec's local opener seeks, which pipes and FIFOs cannot do.
    opener = open if isinstance(fs, LocalFileSystem) else fs.open
    with opener(path, "rb") as stream:
        yield from group_by_keys(tar_file_expander([{"url": url, "stream": stream}]))


def decode_image(data: bytes) -> Image.Image:
    """EXIF-oriented RGB, with the engine's own rules for unusual modes."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return to_rgb(img)


def decode_label_png(data: bytes) -> np.ndarray:
    """Raw class indices of a single-channel PNG (palette indices stay indices)."""
    with Image.open(io.BytesIO(data)) as img:
        if img.mode not in _INDEX_MODES:
            raise ValueError(f"seg.png must be single-channel class ids, got mode {img.mode}")
        arr = np.asarray(img)
    if arr.ndim != 2:
        raise ValueError(f"seg.png must be 2-D, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if arr.min() < 0 or arr.max() > 255:
            raise ValueError(f"seg.png values outside 0..255 ({arr.min()}..{arr.max()})")
        arr = arr.astype(np.uint8)
    return arr


def _image_member(raw: dict) -> tuple[str, bytes] | None:
    for ext in IMAGE_EXTS:
        if ext in raw:
            return ext, raw[ext]
    return None


def decode_sample(raw: dict) -> Sample:
    """One raw sample -> Sample; any failure gives an error Sample (reason before the colon)."""
    key = raw["__key__"]
    meta, image_id = {}, fallback_image_id(key)
    if "json" in raw:
        try:
            meta = json.loads(raw["json"])
            if not isinstance(meta, dict):
                raise ValueError("json metadata must be an object")
            if meta.get("image_id") is not None:
                image_id = int(meta["image_id"])
        except (ValueError, TypeError) as exc:
            return Sample(key, image_id, error=f"bad_json: {exc}")
    member = _image_member(raw)
    if member is None:
        return Sample(key, image_id, meta=meta, error=f"missing_image: members {sorted(k for k in raw if not k.startswith('__'))}")
    try:
        image = decode_image(member[1])
    except Exception as exc:  # PIL raises many types for corrupt files
        return Sample(key, image_id, meta=meta, error=f"decode_image: {type(exc).__name__}: {exc}")
    gt = None
    if "seg.png" in raw:
        try:
            gt = decode_label_png(raw["seg.png"])
        except Exception as exc:
            return Sample(key, image_id, meta=meta, error=f"decode_seg: {type(exc).__name__}: {exc}")
        if gt.shape != (image.height, image.width):
            return Sample(key, image_id, meta=meta,
                          error=f"seg_size: seg.png is {gt.shape[1]}x{gt.shape[0]}, image {image.width}x{image.height}")
    return Sample(key, image_id, image=image, gt=gt, meta=meta)


def error_reason(error: str) -> str:
    return error.split(":", 1)[0]
