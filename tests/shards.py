"""Test helpers: demo shards, and raw tars holding samples the shard writer would refuse."""
from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

from pipeline.sources.shard_writer import write_shards
from pipeline.sources.synthetic import demo_samples


def make_demo_shards(path, num_samples: int, per_shard: int, seed: int = 0, **kwargs) -> dict:
    return write_shards(demo_samples(num_samples, seed=seed, **kwargs), path, per_shard=per_shard, progress=False)


def demo_shards_dir(tmp_path_factory, name: str, shards: int, max_size: int):
    """A module's folder of `shards` demo shards of two samples each."""
    path = tmp_path_factory.mktemp(name)
    make_demo_shards(path, 2 * shards, per_shard=2, max_size=max_size)
    return path


def write_raw_tar(path, members: list[tuple[str, bytes]]) -> None:
    """A tar with exactly these (member name, bytes), in order."""
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def read_ground_truth(shard_path) -> dict:
    """key -> GT array, read with tarfile and PIL only (independent of pipeline.read.reader)."""
    import numpy as np
    from PIL import Image

    gts = {}
    with tarfile.open(shard_path) as tar:
        for member in tar.getmembers():
            if member.name.endswith(".seg.png"):
                with Image.open(io.BytesIO(tar.extractfile(member).read())) as img:
                    gts[member.name.split(".", 1)[0]] = np.array(img)
    return gts


def set_iou(preds, gts, num_classes: int, ignore: int = 255):
    """Dataset-level IoU per class from pixel sets |P ∩ G| / |P ∪ G| over non-ignored GT pixels."""
    import numpy as np

    inter, union = np.zeros(num_classes), np.zeros(num_classes)
    for p, g in zip(preds, gts):
        valid = g != ignore
        for c in range(num_classes):
            inter[c] += np.sum((p == c) & (g == c) & valid)
            union[c] += np.sum(((p == c) | (g == c)) & valid)
    return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def marker_times(out) -> dict[str, int]:
    """{shard: its stats file's mtime_ns} of OUT's done-markers (complete or partial)."""
    return {p.name.removesuffix(".stats.json"): p.stat().st_mtime_ns for p in (Path(out) / "shards").glob("*.stats.json")}


def settled_markers(out, quiet_s: float = 1.0, within_s: float = 30.0) -> dict[str, int]:
    """`marker_times` once none has changed for `quiet_s`: the actors of a driver that stopped are
    killed asynchronously, and one may still finish the shard it was writing."""
    deadline, seen = time.monotonic() + within_s, marker_times(out)
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = marker_times(out)
        if now == seen:
            return now
        seen = now
    raise AssertionError(f"the markers in {out} kept changing for {within_s} s")
