"""The PASCAL VOC colour map, so that report overlays look like the label maps WSSS tools show."""
from __future__ import annotations

import numpy as np
from PIL import Image


def voc_palette() -> list[int]:
    """768 ints (R, G, B per index): index bits dealt round-robin to R, G, B from the top bit down.

    1 -> (128, 0, 0), 2 -> (0, 128, 0), 255 (ignore / unlabeled) -> (224, 224, 192).
    """
    colours = np.zeros((256, 3), dtype=np.int64)
    index = np.arange(256)
    for level in range(8):
        for channel in range(3):
            bit = (index >> (3 * level + channel)) & 1
            colours[:, channel] |= bit << (7 - level)
    return colours.reshape(-1).tolist()


_PALETTE = voc_palette()


def colorize(labels: np.ndarray) -> Image.Image:
    """(H, W) uint8 class ids -> RGB image in VOC colours."""
    img = Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint8), mode="P")
    img.putpalette(_PALETTE)
    return img.convert("RGB")
