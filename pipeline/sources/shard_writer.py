"""Write samples as WebDataset shards (the input shard contract: README, "Make shards"; docs/design.md).

All `nerve shards ...` converters and the tests funnel through `write_shards`, so every shard
obeys the same rules: keys without dots or slashes, one image per sample, optional raw-index
`seg.png` and `json` metadata, a shard file that appears only once complete, and a
`manifest.json` that says how many samples each shard holds (for progress totals and checks).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

import webdataset as wds

from nerve_core.errors import ConfigError
from pipeline.read.shardlist import SHARD_SUFFIXES
from pipeline.storage import AtomicFile, atomic_write, filesystem, join

IMAGE_EXTS = ("jpg", "png", "webp")
MANIFEST_FILE = "manifest.json"
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
        self.file = AtomicFile(fs, path)
        self.writer = wds.TarWriter(self.file.stream, encoder=False, mtime=_MTIME)
        self.count = 0

    def write(self, record: dict) -> None:
        self.writer.write(record)
        self.count += 1

    def commit(self) -> None:
        self.writer.close()
        self.file.commit()

    def abort(self) -> None:
        self.writer.close()
        self.file.abort()


class ShardsExist(ConfigError):
    """The output directory already holds shards: writing more would mix two shard sets."""


def clear_old_shards(fs, root: str, output_dir, prefix: str, overwrite: bool) -> None:
    """Refuse a directory that holds shards unless `overwrite`, which removes this prefix's shards
    and the manifest (shards of another prefix are never removed: they are refused instead).

    A label job given the directory reads every shard in it, so old shards left beside new ones
    would be labeled as if they were part of the new set.
    """
    try:
        names = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False))
    except FileNotFoundError:  # object stores have no empty directories
        names = []
    present = [n for n in names if n.endswith(SHARD_SUFFIXES)]
    if not present:
        return
    if not overwrite:
        raise ShardsExist(f"{output_dir} already holds shards ({_listed(present)}); pass overwrite=true to "
                          f"replace the {prefix}-NNNNNN.tar shards, or write to another directory")
    ours = re.compile(rf"^{re.escape(prefix)}-\d{{6}}\.tar$")
    others = [n for n in present if not ours.match(n)]
    if others:
        raise ShardsExist(f"{output_dir} holds shards that are not {prefix}-NNNNNN.tar ({_listed(others)}); "
                          "overwrite=true only replaces its own prefix: remove them or write to another directory")
    for name in [*present, MANIFEST_FILE]:
        if fs.exists(join(root, name)):
            fs.rm(join(root, name))


def _listed(names: list[str], limit: int = 3) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def write_shards(
    samples: Iterable[ShardSample],
    output_dir,
    prefix: str = "shard",
    per_shard: int = 1000,
    progress: bool = True,
    overwrite: bool = False,
    manifest_extra: dict | None = None,
) -> dict:
    """Write `samples` into `{prefix}-{000000}.tar`, ... under `output_dir`; return the manifest.

    The manifest ({"shards": [{"name", "file", "samples"}], "num_samples", "per_shard", plus
    `manifest_extra`, e.g. a source's category ids}) is also written to `output_dir/manifest.json`
    and lists exactly the shards in the directory. A directory that already holds shards is
    refused unless `overwrite` (see `clear_old_shards`). Duplicate keys are refused: every key
    must name one sample across the whole set, since outputs are joined back to inputs by key.
    """
    if per_shard < 1:
        raise ConfigError("per_shard must be >= 1")
    validate_key(prefix)
    fs, root = filesystem(output_dir)
    fs.makedirs(root, exist_ok=True)
    clear_old_shards(fs, root, output_dir, prefix, overwrite)
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
    manifest = {"shards": shards, "num_samples": len(seen), "per_shard": per_shard, **(manifest_extra or {})}
    atomic_write(fs, join(root, MANIFEST_FILE), json.dumps(manifest, indent=1).encode("utf-8"))
    return manifest


def _close(current) -> dict:
    name, shard = current
    shard.commit()
    return {"name": name, "file": f"{name}.tar", "samples": shard.count}


def _progress_bar(enabled: bool):
    from tqdm import tqdm

    return tqdm(desc="samples", unit="img", disable=not enabled, leave=False)
