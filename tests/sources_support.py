"""Helpers for the shard-maker tests: build small files, read shards back through webdataset."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import webdataset as wds
from PIL import Image

IMAGE_FIELDS = {"jpg", "png", "webp"}


def save_jpeg(path: Path, height: int, width: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)
    return path.read_bytes()


def bordered_mask(height: int, width: int, boxes: list[tuple[int, int, int, int, int]]) -> np.ndarray:
    """Background 0 with filled boxes (class, y0, x0, y1, x1) and a 255 band around each box."""
    mask = np.zeros((height, width), dtype=np.uint8)
    for cls, y0, x0, y1, x1 in boxes:
        mask[max(0, y0 - 1):y1 + 1, max(0, x0 - 1):x1 + 1] = 255
        mask[y0:y1, x0:x1] = cls
    return mask


def read_shards(out_dir: Path) -> dict[str, dict]:
    """key -> raw sample fields, read with webdataset in shard order."""
    urls = sorted(str(p) for p in Path(out_dir).glob("*.tar"))
    dataset = wds.WebDataset(urls, shardshuffle=False)
    return {sample["__key__"]: sample for sample in dataset}


def check_contract(sample: dict) -> tuple[np.ndarray | None, dict]:
    """Assert the input shard contract for one sample; return (GT ids or None, metadata)."""
    key = sample["__key__"]
    assert "." not in key and "/" not in key
    fields = {k for k in sample if not k.startswith("__")}
    assert len(fields & IMAGE_FIELDS) == 1, fields
    assert fields <= IMAGE_FIELDS | {"seg.png", "json"}, fields
    image_field = (fields & IMAGE_FIELDS).pop()
    with Image.open(io.BytesIO(sample[image_field])) as img:
        img.load()
    seg = None
    if "seg.png" in sample:
        with Image.open(io.BytesIO(sample["seg.png"])) as img:
            assert img.mode == "L"
            seg = np.array(img)
    meta = json.loads(sample["json"])
    assert isinstance(meta["image_id"], int) and isinstance(meta["source"], str)
    assert all(isinstance(c, int) for c in meta.get("labels", []))
    return seg, meta


def load_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))
