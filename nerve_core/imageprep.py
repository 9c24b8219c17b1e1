"""Turn any PIL image, or an RGB array, into the fixed-size RGB inputs the models take.

`prepare_image` runs on the CPU, in the pipeline's decode thread. A CPU engine gets both model
inputs resized there (PIL, overlapping its slow models); a GPU engine gets the decoded pixels once,
as uint8, and resizes them on its own device (`resize_on_device`): two PIL resizes cost the host
about 4 ms per VOC-sized image, which at a GPU's 100+ images/s is most of a core. Both use bicubic
resampling with antialiasing, so their pixels differ by a few levels at most. Only the label map is
ever produced at the original size: huge images are shrunk, never upsampled as pixels.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps

# A decoded image: PIL, or an (H, W, 3) uint8 RGB array (what the reader makes of plain JPEGs,
# pipeline/read/jpeg.py, and what library users may pass).
RGBImage = Image.Image | np.ndarray


def upright(image: Image.Image) -> bool:
    """Whether the image's EXIF orientation (if any) says its pixels are already the right way up."""
    return image.getexif().get(ExifTags.Base.Orientation, 1) == 1


def to_rgb(image: Image.Image) -> Image.Image:
    """EXIF-oriented RGB for any PIL mode (L, LA, P, RGBA, CMYK, I;16, I, F, 1...).

    Alpha is composited onto black (the transparent parts of a cut-out carry no object).
    High-bit-depth greyscale is rescaled to 8 bits by its own range rather than clipped.
    """
    if not upright(image):  # exif_transpose copies even when it need not
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

    clip: np.ndarray | None  # (Hc, Wc, 3) uint8, CLIP input (None: resized on the device from `pixels`)
    sd: np.ndarray | None  # (S, S, 3) uint8, Stable Diffusion input (None if the engine has no SD, or from `pixels`)
    size: tuple[int, int]  # original (H, W): the label map is produced at this size
    guide: np.ndarray | None = None  # (H, W, 3) uint8 original pixels, only for image-guided upsampling
    seconds: float = 0.0  # time spent preparing (decode-thread work, reported by benchmarks)
    # original pixels when the engine resizes on its device: (H, W, 4) uint8 RGB + a padding byte
    # (PIL's own memory, see `device_pixels`) or (H, W, 3); the device keeps the first three
    pixels: np.ndarray | None = None
    clip_size: tuple[int, int] | None = None  # (Hc, Wc) of the CLIP input


def clip_input_size(size: tuple[int, int], image_size: int, resize: str) -> tuple[int, int]:
    """(H, W) of the CLIP input: a square (NERVE) or short side = image_size (NACLIP)."""
    if resize == "square":
        return image_size, image_size
    if resize == "short_side":
        h, w = size
        scale = image_size / min(h, w)
        return max(image_size, round(h * scale)), max(image_size, round(w * scale))
    raise ValueError(f"unknown clip.resize {resize!r}: expected 'square' or 'short_side'")


def image_hw(image: RGBImage) -> tuple[int, int]:
    """(H, W) of a PIL image or an RGB array."""
    return (image.shape[0], image.shape[1]) if isinstance(image, np.ndarray) else (image.height, image.width)


def as_pil(image: RGBImage) -> Image.Image:
    """A PIL image of `image` (an RGB array is copied into one)."""
    return Image.fromarray(image, "RGB") if isinstance(image, np.ndarray) else image


def rgb_array(pixels: np.ndarray) -> np.ndarray:
    """`pixels` if it is an (H, W, 3) uint8 RGB array with pixels; ValueError naming what it is otherwise."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3 or not pixels.size:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {pixels.dtype} of shape {pixels.shape}")
    return pixels


def resize_rgb(image: Image.Image, size_hw: tuple[int, int]) -> np.ndarray:
    """Bicubic resize to (H, W) as a uint8 array; large reductions go through PIL's box reduce first."""
    h, w = size_hw
    return np.asarray(image.resize((w, h), Image.BICUBIC, reducing_gap=3.0), dtype=np.uint8)


def prepare_image(image: RGBImage, clip_size: int, clip_resize: str, sd_size: int | None, guided: bool,
                  on_device: bool) -> Prepared:
    """What the engine needs of one image: resized model inputs, or (on_device) the pixels once."""
    start = time.perf_counter()
    rgb = rgb_array(image) if isinstance(image, np.ndarray) else to_rgb(image)
    size = image_hw(rgb)
    clip_hw = clip_input_size(size, clip_size, clip_resize)
    pixels = np.asarray(rgb, dtype=np.uint8) if guided else None  # an RGB array as it is; upsampling copies the guide
    if on_device:
        return Prepared(clip=None, sd=None, size=size, guide=pixels, pixels=device_pixels(rgb) if pixels is None else pixels,
                        clip_size=clip_hw, seconds=time.perf_counter() - start)
    pil = as_pil(rgb)
    sd = resize_rgb(pil, (sd_size,) * 2) if sd_size else None
    return Prepared(clip=resize_rgb(pil, clip_hw), sd=sd, size=size, guide=pixels, clip_size=clip_hw,
                    seconds=time.perf_counter() - start)


def device_pixels(rgb: RGBImage) -> np.ndarray:
    """The pixels of an RGB image for upload, without packing them: PIL keeps RGB as 4 bytes per
    pixel, and np.asarray repacks them to 3 at ~0.4 ms per VOC-sized image, most of what preparing
    costs the host. Where the image's rows are one block of memory (below PIL's block size, about
    16 MB), an (H, W, 4) read-only view of that memory (Pillow's Arrow export); else an (H, W, 3) copy.
    An RGB array is already what is uploaded."""
    if isinstance(rgb, np.ndarray):
        return rgb
    import pyarrow as pa

    try:
        flat = pa.array(rgb)  # fixed_size_list<uint8>[4], one item per pixel, zero-copy (Pillow >= 11.2)
    except (ValueError, TypeError):  # rows in several blocks, or a Pillow without the Arrow export
        return np.array(rgb, dtype=np.uint8)
    return np.frombuffer(flat.values.buffers()[1], dtype=np.uint8).reshape(rgb.height, rgb.width, 4)


# `host_tensor` takes read-only views (`device_pixels`) that nothing writes to. torch warns about
# those; the warning is silenced for this module's calls only, once (a catch_warnings block per
# image would swap the process-wide filters from the engine thread while decode threads run).
warnings.filterwarnings("ignore", message="The given NumPy array is not writable", module=__name__)


def host_tensor(pixels: np.ndarray) -> torch.Tensor:
    """torch.from_numpy of pixels that may be a read-only view (`device_pixels`)."""
    return torch.from_numpy(pixels)


def resize_on_device(pixels: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """(H, W, 3 or 4) uint8 on any device -> (3, h, w) float32 holding uint8 levels, made as `resize_rgb`
    makes them: bicubic with antialiasing (PIL's filter support when shrinking), one axis at a time,
    each pass rounded and clipped to uint8 levels as PIL's are. PIL's order of the two passes is
    followed where it is known (rows first when a portrait image shrinks in height, columns first
    otherwise): at VOC's 500x375 and 375x500 nearly every level is PIL's, elsewhere a level in six
    may be one apart."""
    height, width = pixels.shape[:2]
    columns_first = (height, size_hw[1])
    rows_first = (size_hw[0], width)
    chw = pixels[..., :3].permute(2, 0, 1)[None].float()
    for size in (rows_first if height > width and size_hw[0] < height else columns_first, tuple(size_hw)):
        if size != tuple(chw.shape[2:]):
            chw = torch.nn.functional.interpolate(chw, size=size, mode="bicubic", antialias=True, align_corners=False)
            chw = chw.clamp_(0, 255).round_()
    return chw[0]
