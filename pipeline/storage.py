"""Local or remote paths through fsspec, and atomic writes (temp name + rename).

Every output file goes through `atomic_write` so that a reader never sees a half-written file: a
crash leaves only a `.tmp-*` name behind, which nothing treats as done.
"""
from __future__ import annotations

import uuid

import fsspec


def filesystem(url: str):
    """(fsspec filesystem, path inside it) for a local path or a remote URL (s3://, gs://, ...)."""
    return fsspec.core.url_to_fs(str(url))


def join(base: str, *parts: str) -> str:
    return "/".join([str(base).rstrip("/"), *parts])


def atomic_write(fs, path: str, data: bytes) -> None:
    """Write `data` to `path` so that `path` either does not exist or holds all of it."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with fs.open(tmp, "wb") as f:
        f.write(data)
    try:
        fs.mv(tmp, path)
    except BaseException:
        fs.rm(tmp)
        raise


def read_bytes(fs, path: str) -> bytes:
    with fs.open(path, "rb") as f:
        return f.read()
