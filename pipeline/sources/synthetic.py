"""A deterministic synthetic segmentation set with ground truth, for the demo and the tests.

Coloured shapes on textured backgrounds of varied sizes and aspect ratios; the classes are those of
configs/classes/demo.txt (class 0 = background). The GT marks a 2-pixel band on every shape outline
as 255 (ignore), as VOC does, so scoring code meets ignore pixels. Sample i depends only on
(seed, i), never on how many samples are asked for.
"""
from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageDraw

from pipeline.output.pngcodec import encode_ground_truth_png
from pipeline.sources.shard_writer import ShardSample

# class id -> (shape, RGB colour); ids match the lines of configs/classes/demo.txt.
SHAPES = {
    1: ("circle", (215, 40, 40)),
    2: ("square", (40, 180, 60)),
    3: ("triangle", (40, 70, 220)),
    4: ("bar", (235, 215, 40)),
}
IGNORE = 255
BORDER = 2


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Muted low-frequency colour blotches plus pixel noise: texture without shape-like colours."""
    coarse = rng.uniform(70, 170, size=(4, 4, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR), dtype=np.int16)
    noise = rng.integers(-18, 19, size=(height, width, 3), dtype=np.int16)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def _outline(shape: str, box: tuple[int, int, int, int]) -> list[tuple[int, int]] | None:
    x0, y0, x1, y1 = box
    if shape == "triangle":
        return [((x0 + x1) // 2, y0), (x1, y1), (x0, y1)]
    return None


def _draw(draw: ImageDraw.ImageDraw, shape: str, box, fill, outline=None, width=0) -> None:
    poly = _outline(shape, box)
    if poly is not None:
        draw.polygon(poly, fill=fill, outline=outline, width=width)
    elif shape == "circle":
        draw.ellipse(box, fill=fill, outline=outline, width=width)
    else:
        draw.rectangle(box, fill=fill, outline=outline, width=width)


def _shape_box(rng: np.random.Generator, shape: str, width: int, height: int):
    short = min(width, height)
    size = int(rng.uniform(0.25, 0.5) * short)
    w, h = (size, max(4, size // 3)) if shape == "bar" else (size, size)
    if shape == "bar" and rng.random() < 0.5:
        w, h = h, w
    x0 = int(rng.integers(0, width - w))
    y0 = int(rng.integers(0, height - h))
    return (x0, y0, x0 + w, y0 + h)


def demo_image(seed: int, index: int, min_size: int = 64, max_size: int = 160):
    """(RGB image, GT class-id map) for sample `index`."""
    rng = np.random.default_rng([seed, index])
    width, height = (int(v) for v in rng.integers(min_size, max_size + 1, size=2))
    image = _background(rng, width, height)
    seg = Image.new("L", (width, height), 0)
    paint, label = ImageDraw.Draw(image), ImageDraw.Draw(seg)
    for class_id in rng.choice(list(SHAPES), size=int(rng.integers(1, 4)), replace=False):
        shape, colour = SHAPES[int(class_id)]
        box = _shape_box(rng, shape, width, height)
        jitter = tuple(int(c) for c in np.clip(np.array(colour) + rng.integers(-20, 21, 3), 0, 255))
        _draw(paint, shape, box, fill=jitter)
        _draw(label, shape, box, fill=int(class_id), outline=IGNORE, width=BORDER)
    return image, np.asarray(seg, dtype=np.uint8)


def encode_image(image: Image.Image, ext: str) -> bytes:
    buf = io.BytesIO()
    fmt = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[ext]
    options = {"quality": 95} if ext in ("jpg", "webp") else {}
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def demo_samples(
    num_samples: int,
    seed: int = 0,
    min_size: int = 64,
    max_size: int = 160,
    formats: tuple[str, ...] = ("jpg", "png"),
    key_prefix: str = "demo",
) -> Iterator[ShardSample]:
    """`num_samples` ShardSamples with GT and metadata; image formats cycle through `formats`."""
    for i in range(num_samples):
        image, seg = demo_image(seed, i, min_size, max_size)
        labels = sorted(int(c) for c in np.unique(seg) if c != IGNORE)
        ext = formats[i % len(formats)]
        yield ShardSample(
            key=f"{key_prefix}{i:06d}",
            image=encode_image(image, ext),
            image_ext=ext,
            seg_png=encode_ground_truth_png(seg),
            meta={"image_id": i, "labels": labels, "source": "demo"},
        )
