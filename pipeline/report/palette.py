"""Report colours: the PASCAL VOC colour map, except for classes whose names say their colour.

Overlays look like the label maps WSSS tools show, and a class named for a colour ("blue
triangle" in the demo vocabulary) is drawn in that colour rather than in whatever VOC colour its
index happens to have.
"""
from __future__ import annotations

import re

import numpy as np
from PIL import Image

IGNORE = 255
# Colour words -> RGB. Class names are matched word by word, the first colour word wins.
NAMED_COLOURS = {
    "red": (215, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220), "yellow": (235, 215, 40),
    "orange": (240, 140, 30), "purple": (130, 50, 170), "pink": (240, 130, 180), "brown": (140, 90, 40),
    "black": (20, 20, 20), "white": (245, 245, 245), "grey": (128, 128, 128), "gray": (128, 128, 128),
}


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


def named_colour(name: str) -> tuple[int, int, int] | None:
    """The colour a class name states ("blue triangle" -> blue), or None."""
    for word in re.findall(r"[a-z]+", name.lower()):
        if word in NAMED_COLOURS:
            return NAMED_COLOURS[word]
    return None


def class_palette(class_names: list[str]) -> list[int]:
    """768 ints: VOC colours, with each class whose name states a colour drawn in that colour."""
    colours = np.array(voc_palette()).reshape(256, 3)
    for class_id, name in enumerate(class_names[:IGNORE]):
        stated = named_colour(name)
        if stated is not None:
            colours[class_id] = stated
    return colours.reshape(-1).tolist()


def legend(class_names: list[str]) -> list[tuple[str, tuple[int, int, int]]]:
    """(label, RGB) for every class and for unlabeled / ignore pixels, in class-id order."""
    colours = np.array(class_palette(class_names)).reshape(256, 3)
    entries = [(name, tuple(int(v) for v in colours[i])) for i, name in enumerate(class_names[:IGNORE])]
    return entries + [("unlabeled / ignore", tuple(int(v) for v in colours[IGNORE]))]


def hex_colour(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def colorize(labels: np.ndarray, palette: list[int]) -> Image.Image:
    """(H, W) uint8 class ids -> RGB image in the palette's colours."""
    img = Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint8), mode="P")
    img.putpalette(palette)
    return img.convert("RGB")
