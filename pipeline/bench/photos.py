"""Real photographs for the host-path benchmarks: scikit-image's bundled pictures at VOC-like sizes.

Flat synthetic shapes decode and compress far faster than photographs, so a host-path cost measured
on them flatters the pipeline. scikit-image's wheel ships a few colour photographs (no download).
Each bench image is a random crop of one of them scaled to 500x375 or 375x500 (VOC's usual sizes),
flipped at random and stored as JPEG quality 90, with a ground-truth map whose regions follow the
picture's own brightness (a few classes with smooth borders), so that scoring runs as on real data.
"""
from __future__ import annotations

import io
from collections.abc import Iterator
from functools import cache

import numpy as np
from PIL import Image

from pipeline.output.pngcodec import encode_ground_truth_png
from pipeline.sources.shard_writer import ShardSample

# scikit-image data functions that return colour photographs, with the size each one has.
PHOTOS = {
    "astronaut": (512, 512), "chelsea": (300, 451), "coffee": (400, 600), "rocket": (427, 640),
    "stereo_motorcycle": (500, 741), "hubble_deep_field": (872, 1000), "immunohistochemistry": (512, 512),
    "retina": (1411, 1411),
}
LANDSCAPE, PORTRAIT = (375, 500), (500, 375)  # (H, W) of the bench images
JPEG_QUALITY = 90


@cache
def photo(name: str) -> Image.Image:
    """One of scikit-image's bundled colour photographs as an RGB image."""
    try:
        import skimage.data
    except ImportError as exc:
        raise ImportError("the real-photo benchmarks need scikit-image: pip install scikit-image") from exc
    pixels = getattr(skimage.data, name)()
    if name == "stereo_motorcycle":
        pixels = pixels[0]  # (left, right, disparity): the left view
    return Image.fromarray(np.ascontiguousarray(pixels[..., :3]))


def _crop(rng: np.random.Generator, width: int, height: int, size_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """A box of the target aspect covering 55-100% of the largest such box, anywhere in the photo."""
    aspect = size_hw[1] / size_hw[0]
    full_w = min(width, height * aspect)
    scale = rng.uniform(0.55, 1.0)
    w, h = full_w * scale, full_w * scale / aspect
    x0, y0 = rng.uniform(0, width - w), rng.uniform(0, height - h)
    return round(x0), round(y0), round(x0 + w), round(y0 + h)


def ground_truth(image: Image.Image, classes: list[int], rng: np.random.Generator) -> np.ndarray:
    """Class ids over brightness bands of the blurred picture: region borders follow the photo."""
    small = np.asarray(image.convert("L").resize((16, 12), Image.BOX), dtype=np.float32)
    smooth = np.asarray(Image.fromarray(small).resize(image.size, Image.BILINEAR))
    edges = np.quantile(smooth, np.sort(rng.uniform(0.2, 0.8, len(classes) - 1)))
    return np.asarray(classes, dtype=np.uint8)[np.searchsorted(edges, smooth)]


def bench_photo(seed: int, index: int, num_classes: int, size_hw: tuple[int, int] | None = None) -> tuple[Image.Image, np.ndarray]:
    """(RGB image at 500x375 or 375x500, or at `size_hw` (H, W) when given, GT map) of bench image `index`."""
    rng = np.random.default_rng([seed, index])
    source = photo(list(PHOTOS)[index % len(PHOTOS)])
    drawn = PORTRAIT if rng.random() < 0.3 else LANDSCAPE  # drawn either way: the same crops with or without size_hw
    size_hw = size_hw or drawn
    box = _crop(rng, source.width, source.height, size_hw)
    image = source.resize(size_hw[::-1], Image.BICUBIC, box=box, reducing_gap=3.0)
    if rng.random() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    foreground = rng.choice(np.arange(1, num_classes), size=min(num_classes - 1, int(rng.integers(1, 4))), replace=False)
    return image, ground_truth(image, [0, *sorted(int(c) for c in foreground)], rng)


def jpeg(image: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def photo_samples(count: int, num_classes: int, seed: int = 0) -> Iterator[ShardSample]:
    """`count` shard samples (JPEG q90, GT, image-level labels), cycling through the photographs."""
    if num_classes < 2:
        raise ValueError(f"real-photo shards need at least 2 classes (background + one), got {num_classes}")
    for i in range(count):
        image, gt = bench_photo(seed, i, num_classes)
        labels = sorted(int(c) for c in np.unique(gt))
        yield ShardSample(key=f"photo{i:06d}", image=jpeg(image), image_ext="jpg", seg_png=encode_ground_truth_png(gt),
                          meta={"image_id": i, "labels": labels, "source": f"skimage.data.{list(PHOTOS)[i % len(PHOTOS)]}"})
