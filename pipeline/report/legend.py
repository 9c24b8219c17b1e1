"""The colour legend (class name -> colour) as a PNG, for report formats that cannot colour text."""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

_ROW, _SWATCH, _WIDTH = 18, 14, 320  # pixels


def write_legend_png(entries: list[tuple[str, tuple[int, int, int]]], path: Path) -> None:
    """One row per (label, RGB): a swatch, then the label."""
    img = Image.new("RGB", (_WIDTH, _ROW * len(entries) + 4), "white")
    draw, font = ImageDraw.Draw(img), ImageFont.load_default()
    for row, (label, rgb) in enumerate(entries):
        top = 2 + row * _ROW
        draw.rectangle((4, top, 4 + _SWATCH, top + _SWATCH), fill=rgb, outline=(90, 90, 90))
        draw.text((8 + _SWATCH + 4, top + 1), label, fill=(20, 20, 20), font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
