"""Plain JPEG photos decoded straight into an RGB array: the largest per-image cost of labeling, cut by a third.

A labeler's host decodes every image, and at a GPU's rate that is most of a core. PIL decodes a
JPEG with libjpeg-turbo into its own 4-bytes-per-pixel layout, through its chunked loader;
simplejpeg runs the same library (accurate DCT, smooth chroma upsampling, as PIL does) straight
into an (H, W, 3) array, with the GIL released: a third less time for a VOC-sized photo
(docs/benchmarks.md), and the same pixels (tests compare the two over chroma subsamplings,
progressive and greyscale files).
It is used only where the result is PIL's: YCbCr and greyscale JPEGs that need no EXIF rotation.
CMYK and YCCK files, rotated photos and whatever simplejpeg refuses go through PIL, which then also
gives a corrupt file its error.
"""
from __future__ import annotations

import numpy as np
import simplejpeg
from PIL import Image

from nerve_core.imageprep import upright

PLAIN_COLORSPACES = ("YCbCr", "Gray")


def plain_jpeg_rgb(data: bytes, header: Image.Image) -> np.ndarray | None:
    """(H, W, 3) uint8 RGB of `data`, a JPEG whose `header` (PIL, opened, not loaded) shows it plain;
    None where PIL must decode it."""
    if header.format != "JPEG" or not upright(header):
        return None
    try:
        if simplejpeg.decode_jpeg_header(data)[2] not in PLAIN_COLORSPACES:
            return None
        return simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=False, fastupsample=False)
    except ValueError:  # libjpeg-turbo refused it: PIL decodes it or says why not
        return None
