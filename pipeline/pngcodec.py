"""The one PNG codec for label maps: class ids (or quantised confidences) as single-channel PNGs.

Ground truth in shards, masks in Parquet rows and exported label files are all 8-bit index images.
Encoding writes "L" (or "P" with a palette for viewers); decoding returns the raw indices whatever
the mode, never passing through RGB or luminance, which would turn class ids into colours.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

# Modes whose pixel values are the class indices themselves.
INDEX_MODES = ("1", "L", "P", "I", "I;16", "I;16B", "I;16L")


def encode_index_png(values: np.ndarray, palette: list[int] | None = None) -> bytes:
    """A lossless 8-bit PNG of `values`: mode "L", or mode "P" carrying `palette` (768 ints)."""
    img = Image.fromarray(np.ascontiguousarray(values, dtype=np.uint8), mode="L" if palette is None else "P")
    if palette is not None:
        img.putpalette(palette)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def index_array(img: Image.Image) -> np.ndarray:
    """(H, W) uint8 indices of an open single-channel image; ValueError for any other image."""
    if img.mode not in INDEX_MODES:
        raise ValueError(f"expected a single-channel PNG of class ids, got mode {img.mode}")
    values = np.asarray(img)
    if values.ndim != 2:
        raise ValueError(f"expected a 2-D label map, got shape {values.shape}")
    if values.dtype != np.uint8:
        if values.size and (values.min() < 0 or values.max() > 255):
            raise ValueError(f"values outside 0..255 ({values.min()}..{values.max()})")
        values = values.astype(np.uint8)
    return values


def decode_index_png(data: bytes) -> np.ndarray:
    """The raw indices of an encoded single-channel PNG (palette indices stay indices)."""
    with Image.open(io.BytesIO(data)) as img:
        return index_array(img)
