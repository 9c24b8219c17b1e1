"""Reading images and label maps from disk without altering what they encode.

Images are kept as their original bytes whenever WebDataset readers can decode them (JPEG, PNG,
WebP): re-encoding a JPEG would change the pixels the labeler sees. Label maps are read as raw
palette indices: converting a palette PNG through RGB or "L" would turn class ids into colours or
luminance values.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.output.pngcodec import INDEX_MODES, index_array

# PIL format name -> extension of the shard contract; other formats are re-encoded as PNG.
_KEPT_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
# A PNG's IHDR bit depth and colour type (bytes 24, 25 of the file): 8-bit greyscale.
_GRAY8_IHDR = bytes([8, 0])


class SkipSample(Exception):
    """This sample cannot be used; `reason` is a short category for the skip summary."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


def read_image(path: Path) -> tuple[bytes, str, tuple[int, int]]:
    """(encoded bytes, "jpg"|"png"|"webp", (height, width)) of a fully decodable image file.

    Every byte of the file is checked once so that truncated or corrupt files are caught here, not
    by the labeler: a JPEG is decoded at 1/8 scale through the DCT (which still reads every
    entropy-coded byte), a PNG has the CRC of each of its chunks verified (a full decode would
    inflate every pixel: 2.5 ms for 500x375 against 0.1 ms, which made Cityscapes' PNG photos the
    slowest part of `nerve shards cityscapes`), any other format is decoded whole.
    """
    if not path.is_file():
        raise SkipSample("missing image", str(path))
    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, size = img.format, img.size
            ext = _KEPT_FORMATS.get(fmt)
            if fmt == "PNG":
                img.verify()
            else:
                if fmt == "JPEG":
                    img.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
                img.load()
            if ext is None:
                data, ext = _as_png(img), "png"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise SkipSample("unreadable image", f"{path}: {exc}") from exc
    return data, ext, (size[1], size[0])


def _as_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class MaskFile:
    ids: np.ndarray  # (H, W) uint8 class ids as stored
    gray8_png: bytes | None  # the file itself when it is an 8-bit grey PNG: a shard's seg.png as it is


def read_mask_file(path: Path) -> MaskFile:
    """A single-channel PNG's raw ids (palette indices read raw, never mapped), and the file's bytes
    when they already are what a shard stores (8-bit greyscale: IHDR bit depth 8, colour type 0),
    so that a mask needing no conversion is not encoded again."""
    if not path.is_file():
        raise SkipSample("missing mask", str(path))
    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.mode not in INDEX_MODES:
                raise SkipSample("mask not single-channel", f"{path}: mode {img.mode}")
            gray8 = img.format == "PNG" and data[24:26] == _GRAY8_IHDR
            return MaskFile(index_array(img), data if gray8 else None)
    except (OSError, SyntaxError) as exc:
        raise SkipSample("unreadable mask", f"{path}: {exc}") from exc
    except ValueError as exc:  # single-channel, but not 8-bit class ids
        raise SkipSample("mask ids out of range", f"{path}: {exc}") from exc


def read_index_mask(path: Path) -> np.ndarray:
    """(H, W) uint8 class ids from a single-channel PNG (palette indices read raw, never mapped)."""
    return read_mask_file(path).ids


def check_mask_size(mask: np.ndarray, image_hw: tuple[int, int], path: Path) -> None:
    if mask.shape != tuple(image_hw):
        raise SkipSample("mask size differs from image", f"{path}: {mask.shape} vs {image_hw}")


def check_mask_ids(mask: np.ndarray, num_classes: int, path: Path, ignore: int = 255) -> None:
    """Every id must be a class (0..num_classes-1) or `ignore`: catches colour masks saved as "L"."""
    bad = np.setdiff1d(np.unique(mask), [*range(num_classes), ignore])
    if bad.size:
        raise SkipSample("mask ids out of range", f"{path}: {bad[:8].tolist()} not in 0..{num_classes - 1}")


def labels_present(mask: np.ndarray, exclude: tuple[int, ...] = (255,)) -> list[int]:
    """Sorted class ids that occur in `mask`, minus `exclude` (ignore, and background if asked)."""
    counts = np.bincount(mask.ravel(), minlength=256)
    return [int(c) for c in np.flatnonzero(counts) if c not in exclude]
