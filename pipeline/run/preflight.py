"""What a label job checks before Ray starts: a misspelt device or a missing input shard fails in
one line within a second, instead of after Ray and the actors have started and every attempt has
failed. Also where the first write into the output directory is told apart from Ray's errors.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from fsspec.implementations.local import LocalFileSystem

from nerve_core.devices import check_device_name
from nerve_core.errors import ConfigError, NerveError, NotFound
from pipeline.read.shardlist import DirectoryListings, shard_id
from pipeline.storage import filesystem

_SHOWN = 5  # paths named in the message; the rest are counted


class OutputNotWritable(NerveError):
    """The output directory cannot be created or written."""


def _readable(url: str, listings: DirectoryListings) -> bool:
    fs, path = filesystem(url)
    if isinstance(fs, LocalFileSystem):
        return os.path.exists(path) and not os.path.isdir(path) and os.access(path, os.R_OK)  # a pipe is a shard too
    kind = listings.kind(fs, path)  # one listing per directory answers for all of its shards
    return kind == "file" or (kind is None and fs.exists(path))


def unreadable_shards(urls: list[str]) -> list[str]:
    """The shards of `urls` that do not exist or cannot be read. Remote shards are found in their
    directory's listing; only those it does not show are asked about one by one, in parallel."""
    listings = DirectoryListings()
    with ThreadPoolExecutor(max_workers=16) as pool:
        return [url for url, ok in zip(urls, pool.map(lambda u: _readable(u, listings), urls)) if not ok]


def check_ray_settings(ray) -> None:
    """ray.* counts that would leave actors with nothing to do (or a loop that never hands out a shard)."""
    for key, least in (("decode_threads", 1), ("prefetch", 1), ("shards_ahead", 0), ("max_retries", 0),
                       ("stop_grace_s", 0)):
        if getattr(ray, key) < least:
            raise ConfigError(f"ray.{key} must be >= {least}, got {getattr(ray, key)}")
    if not 0 <= ray.metrics_export_port <= 65535:
        raise ConfigError(f"ray.metrics_export_port must be a port number (0 = Ray picks one), got {ray.metrics_export_port}")


def check_job(device: str, urls: list[str], done: set[str] = frozenset()) -> None:
    """Raise a NerveError naming what is wrong with the device name or the input shards; shards in
    `done` (labeled by an earlier run of the same job) are not read again, so they are not asked about."""
    check_device_name(device)
    urls = [u for u in urls if shard_id(u) not in done]
    missing = unreadable_shards(urls)
    if missing:
        shown = ", ".join(missing[:_SHOWN]) + (f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else "")
        raise NotFound(f"{len(missing)} of {len(urls)} input shards do not exist or cannot be read: {shown}")


@contextmanager
def writing_output(out_dir: str):
    """An OSError in the block is the output directory's: say so, in one line."""
    try:
        yield
    except OSError as exc:
        raise OutputNotWritable(f"cannot write the outputs in {out_dir}: {type(exc).__name__}: {exc}") from exc
