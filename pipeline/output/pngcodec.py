"""The one PNG codec for label maps: class ids (or quantised confidences) as single-channel PNGs.

Ground truth in shards, masks in Parquet rows and exported label files are all 8-bit index images.
Encoding writes "L" (or "P" with a palette for viewers); decoding returns the raw indices whatever
the mode, never passing through RGB or luminance, which would turn class ids into colours.

The "L" encoder is our own because it runs once per labeled image on the actor's CPU, which a GPU
engine leaves as the limit. PIL's encoder tries adaptive row filters at zlib level 6: 1-3.5 ms for a
500x375 map. A label map is long runs of a few values and most of its rows repeat the row above: the
"Up" filter on every row turns those into zeros and zlib's run-length strategy packs them, into a
smaller file than PIL's, in about 0.4 ms. The file is an ordinary 8-bit greyscale PNG (IHDR, one
IDAT, IEND) that any decoder reads back to the same array.

Ground truth is packed the other way round (`encode_ground_truth_png`, what the shard makers write):
it is read by every label and score run, and PIL inflates a PNG row by row, which is slow exactly
on the one-byte-back matches that Up rows and Z_RLE make. Unfiltered rows at zlib level 3 match
the row above instead: the file decodes in under half the time (0.30 against 0.73 ms for a VOC-sized
map, docs/benchmarks.md), is written in about the same time (0.53 against 0.45 ms), and is about
1.5 times as large; masks, kept by the million, stay small.
"""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

# Modes whose pixel values are the class indices themselves.
INDEX_MODES = ("1", "L", "P", "I", "I;16", "I;16B", "I;16L")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_gray8(array: np.ndarray, quick_to_read: bool = False) -> bytes:
    """Lossless 8-bit greyscale PNG of a 2-D uint8 array: every row Up-filtered, zlib Z_RLE (the
    smallest file); `quick_to_read`: rows unfiltered, zlib level 3 (see the module's docstring)."""
    array = np.asarray(array)
    if array.ndim != 2 or array.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 array, got {array.dtype} of shape {array.shape}")
    height, width = array.shape
    if not height or not width:
        raise ValueError(f"a PNG needs at least one pixel, got shape {array.shape}")
    rows = np.empty((height, width + 1), dtype=np.uint8)  # each row: its filter type, then its bytes
    if quick_to_read:
        rows[:, 0] = 0  # None: the bytes as they are
        rows[:, 1:] = array
        packer = zlib.compressobj(3, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY)
    else:
        rows[:, 0] = 2  # Up: each byte minus the one above it, modulo 256 (the first row's "above" is zeros)
        rows[0, 1:] = array[0]
        np.subtract(array[1:], array[:-1], out=rows[1:, 1:])
        packer = zlib.compressobj(6, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    idat = packer.compress(rows.data) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8 bits, greyscale, deflate, no interlace
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def encode_ground_truth_png(values: np.ndarray) -> bytes:
    """A shard's `seg.png`: class ids as an 8-bit greyscale PNG packed to be read quickly."""
    return png_gray8(np.asarray(values, dtype=np.uint8), quick_to_read=True)


def encode_index_png(values: np.ndarray, palette: list[int] | None = None) -> bytes:
    """A lossless 8-bit PNG of `values`: mode "L" (png_gray8), or mode "P" carrying `palette` (768 ints)."""
    if palette is None:
        return png_gray8(np.asarray(values, dtype=np.uint8))
    img = Image.fromarray(np.ascontiguousarray(values, dtype=np.uint8), mode="P")
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
