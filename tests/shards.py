"""Test helpers: demo shards, and raw tars holding samples the shard writer would refuse."""
from __future__ import annotations

import io
import tarfile

from pipeline.shard_writer import write_shards
from pipeline.synthetic import demo_samples


def make_demo_shards(path, num_samples: int, per_shard: int, seed: int = 0, **kwargs) -> dict:
    return write_shards(demo_samples(num_samples, seed=seed, **kwargs), path, per_shard=per_shard, progress=False)


def write_raw_tar(path, members: list[tuple[str, bytes]]) -> None:
    """A tar with exactly these (member name, bytes), in order."""
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
