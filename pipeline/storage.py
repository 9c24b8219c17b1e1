"""Local or remote paths through fsspec, and atomic writes (temp name + rename).

Every output file goes through `atomic_write` so that a reader never sees a half-written file: a
crash leaves only a `.tmp-*` name behind, which nothing treats as done.
"""
from __future__ import annotations

import uuid

import fsspec
from fsspec.implementations.local import LocalFileSystem


def filesystem(url: str):
    """(fsspec filesystem, path inside it) for a local path or a remote URL (s3://, gs://, ...)."""
    return fsspec.core.url_to_fs(str(url))


def join(base: str, *parts: str) -> str:
    return "/".join([str(base).rstrip("/"), *parts])


class AtomicFile:
    """A file written under a temporary name: `commit` renames it into place, `abort` removes it.

    For outputs written piece by piece (a shard tar); whole files go through `atomic_write`.
    """

    def __init__(self, fs, path: str):
        self.fs, self.path = fs, path
        self.tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        self.stream = fs.open(self.tmp, "wb")

    def commit(self) -> None:
        self.stream.close()
        try:
            self.fs.mv(self.tmp, self.path)
        except BaseException:
            self.fs.rm(self.tmp)
            raise

    def abort(self) -> None:
        self.stream.close()
        self.fs.rm(self.tmp)


def atomic_write(fs, path: str, data: bytes) -> None:
    """Write `data` to `path` so that `path` either does not exist or holds all of it."""
    target = AtomicFile(fs, path)
    try:
        target.stream.write(data)
    except BaseException:
        target.abort()
        raise
    target.commit()


def atomic_write_local(path, data: bytes) -> None:
    """`atomic_write` for a local path (export targets, report files)."""
    atomic_write(LocalFileSystem(), str(path), data)


def read_bytes(fs, path: str) -> bytes:
    with fs.open(path, "rb") as f:
        return f.read()
