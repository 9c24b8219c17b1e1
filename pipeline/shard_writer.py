"""Write samples as WebDataset shards (the input shard contract in DESIGN.md).

All `nerve shards ...` converters and the tests funnel through `write_shards`, so every shard
obeys the same rules: keys without dots or slashes, one image per sample, optional raw-index
`seg.png` and `json` metadata, a shard file that appears only once complete, and a
`manifest.json` that says how many samples each shard holds (for progress totals and checks).
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Iterable

import webdataset as wds

from nerve_core.errors import ConfigError
from pipeline.storage import atomic_write, filesystem, join

IMAGE_EXTS = ("jpg", "png", "webp")
_KEY_OK = re.compile(r"^[A-Za-z0-9_\-]+$")
# A fixed tar member time makes shards byte-identical across runs on the same samples.
_MTIME = 0.0


@dataclass
class ShardSample:
    key: str
    image: bytes  # encoded image file
    image_ext: str  # "jpg" | "png" | "webp"
    seg_png: bytes | None = None  # single-channel PNG of class ids, 255 = ignore
    meta: dict | None = None  # {"image_id": int, "labels": [int], "source": str}


def validate_key(key: str) -> str:
    """WebDataset splits a member name at its first dot, and slashes make directories."""
    if not isinstance(key, str) or not _KEY_OK.match(key):
        raise ConfigError(f"invalid sample key {key!r}: use letters, digits, '_' and '-' only")
    return key


def _record(sample: ShardSample) -> dict:
    validate_key(sample.key)
    if sample.image_ext not in IMAGE_EXTS:
        raise ValueError(f"sample {sample.key!r}: image_ext must be one of {IMAGE_EXTS}")
    record = {"__key__": sample.key, sample.image_ext: bytes(sample.image)}
    if sample.seg_png is not None:
        record["seg.png"] = bytes(sample.seg_png)
    if sample.meta is not None:
        record["json"] = json.dumps(sample.meta, sort_keys=True).encode("utf-8")
    return record


def shard_name(prefix: str, index: int) -> str:
    return f"{prefix}-{index:06d}"


class _ShardFile:
    """One shard being written under a temporary name; `commit` renames it into place."""

    def __init__(self, fs, path: str):
        self.fs, self.path = fs, path
        self.tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        self.stream = fs.open(self.tmp, "wb")
        self.writer = wds.TarWriter(self.stream, encoder=False, mtime=_MTIME)
        self.count = 0

    def write(self, record: dict) -> None:
        self.writer.write(record)
        self.count += 1

    def commit(self) -> None:
        self.writer.close()
        self.stream.close()
        self.fs.mv(self.tmp, self.path)

    def abort(self) -> None:
        self.writer.close()
        self.stream.close()
        self.fs.rm(self.tmp)


def write_shards(
    samples: Iterable[ShardSample],
    output_dir,
    prefix: str = "shard",
    per_shard: int = 1000,
    progress: bool = True,
) -> dict:
    """Write `samples` into `{prefix}-{000000}.tar`, ... under `output_dir`; return the manifest.

    The manifest ({"shards": [{"name", "file", "samples"}], "num_samples", "per_shard"}) is also
    written to `output_dir/manifest.json`. Duplicate keys are refused: every key must name one
    sample across the whole set, since outputs are joined back to inputs by key.
    """
    if per_shard < 1:
        raise ConfigError("per_shard must be >= 1")
    validate_key(prefix)
    fs, root = filesystem(output_dir)
    fs.makedirs(root, exist_ok=True)
    shards, seen, current = [], set(), None
    bar = _progress_bar(progress)
    try:
        for sample in samples:
            record = _record(sample)
            if sample.key in seen:
                raise ValueError(f"duplicate sample key {sample.key!r}")
            seen.add(sample.key)
            if current is None:
                name = shard_name(prefix, len(shards))
                current = (name, _ShardFile(fs, join(root, f"{name}.tar")))
            current[1].write(record)
            bar.update(1)
            if current[1].count == per_shard:
                shards.append(_close(current))
                current = None
        if current is not None:
            shards.append(_close(current))
            current = None
    except BaseException:
        if current is not None:
            current[1].abort()
        raise
    finally:
        bar.close()
    manifest = {"shards": shards, "num_samples": len(seen), "per_shard": per_shard}
    atomic_write(fs, join(root, "manifest.json"), json.dumps(manifest, indent=1).encode("utf-8"))
    return manifest


def _close(current) -> dict:
    name, shard = current
    shard.commit()
    return {"name": name, "file": f"{name}.tar", "samples": shard.count}


def _progress_bar(enabled: bool):
    from tqdm import tqdm

    return tqdm(desc="samples", unit="img", disable=not enabled, leave=False)
