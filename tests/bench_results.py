"""A benchmark's three outputs read back: the results JSON, with its plot and table checked to exist."""
from __future__ import annotations

import json

from PIL import Image


def read_results(out, name: str) -> dict:
    results = json.loads((out / f"{name}.json").read_text())
    with Image.open(out / f"{name}.png") as png:
        assert png.format == "PNG" and png.size[0] > 100
    assert (out / f"{name}.txt").read_text().strip()
    return results
