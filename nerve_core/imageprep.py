"""Turn any PIL image into the fixed-size RGB arrays the models take.

Runs on the CPU, in the pipeline's decode thread, so that resizing overlaps the models. Only the
label map is ever produced at the original size: huge images are shrunk here, never upsampled as
pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps


def to_rgb(image: Image.Image) -> Image.Image:
    """EXIF-oriented RGB for any PIL mode (L, LA, P, RGBA, CMYK, I;16, I, F, 1...).

    Alpha is composited onto black (the transparent parts of a cut-out carry no object).
    High-bit-depth greyscale is rescaled to 8 bits by its own range rather than clipped.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return Image.fromarray(scaled.round().astype(np.uint8), "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


@dataclass
class Prepared:
    """One image ready for the engine: model inputs plus what the output stage needs."""

    clip: np.ndarray  # (Hc, Wc, 3) uint8, CLIP input
    sd: np.ndarray | None  # (S, S, 3) uint8, Stable Diffusion input (None if the engine has no SD)
    size: tuple[int, int]  # original (H, W): the label map is produced at this size
    guide: np.ndarray | None = None  # (H, W, 3) uint8 original pixels, only for image-guided upsampling
    seconds: float = 0.0  # time spent preparing (decode-thread work, reported by benchmarks)


def clip_input_size(size: tuple[int, int], image_size: int, resize: str) -> tuple[int, int]:
    """(H, W) of the CLIP input: a square (NERVE) or short side = image_size (NACLIP)."""
    if resize == "square":
        return image_size, image_size
    if resize == "short_side":
        h, w = size
        scale = image_size / min(h, w)
        return max(image_size, round(h * scale)), max(image_size, round(w * scale))
    raise ValueError(f"unknown clip.resize {resize!r}: expected 'square' or 'short_side'")


def resize_rgb(image: Image.Image, size_hw: tuple[int, int]) -> np.ndarray:
    """Bicubic resize to (H, W) as a uint8 array; large reductions go through PIL's box reduce first."""
    h, w = size_hw
    return np.asarray(image.resize((w, h), Image.BICUBIC, reducing_gap=3.0), dtype=np.uint8)
