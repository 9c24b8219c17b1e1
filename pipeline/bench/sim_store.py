"""`simstore://BUCKET/...`: an object store for the driver simulation (docs/benchmarks.md, "The driver at scale").

Every request sleeps a set latency in the calling thread and is counted by kind (list, get, put,
head, delete, rename), as an object store's round trips would be; a listing costs one request per
LIST_PAGE names, as S3's does. A batched `cat` of many paths runs CONCURRENCY requests at once, as
s3fs does. The shards' done-markers are not held as files: a bucket keeps the set of shards whose
actor finished, and each such shard's stats file (and the Parquet file beside it, in listings) is
made on read from its name, so a million of them cost a set of names; what the driver writes
(config.yaml, the index parts, summary.json) is kept as bytes.
"""
from __future__ import annotations

import io
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import fsspec
from fsspec.spec import AbstractFileSystem

from pipeline.output.outputdir import PARQUET_SUFFIX, STATS_SUFFIX

PROTOCOL = "simstore"
LIST_PAGE = 1000  # names per listing request (S3's ListObjectsV2 page)
CONCURRENCY = 32  # requests in flight for a batched cat
_BUCKETS: dict[str, Bucket] = {}


class Bucket:
    """One simulated store: the driver's files, the shards with a done-marker, the request counts."""

    def __init__(self, latency_s: float, shards_folder: str, stats_file: Callable[[str], bytes]):
        """`shards_folder`: where the markers live (OUT/shards, without the protocol);
        `stats_file(shard)`: a marker's content."""
        self.latency_s, self.shards_folder, self.stats_file = latency_s, shards_folder, stats_file
        self.files: dict[str, bytes] = {}
        self.markers: set[str] = set()
        self.requests: Counter = Counter()
        self._lock = threading.Lock()

    def request(self, kind: str, count: int = 1) -> None:
        with self._lock:
            self.requests[kind] += count
        if self.latency_s:
            time.sleep(self.latency_s * count)

    def marker_of(self, path: str, suffix: str = STATS_SUFFIX) -> str | None:
        """The shard whose stats file (or file with `suffix`) `path` is, when its marker exists."""
        folder, _, name = path.rpartition("/")
        if folder == self.shards_folder and name.endswith(suffix) and name[: -len(suffix)] in self.markers:
            return name[: -len(suffix)]
        return None

    def children(self, folder: str) -> list[str]:
        prefix = folder.rstrip("/") + "/"
        names = {prefix + p[len(prefix):].split("/", 1)[0] for p in self.files if p.startswith(prefix)}
        if folder.rstrip("/") == self.shards_folder:
            names.update(f"{prefix}{s}{suffix}" for s in self.markers for suffix in (STATS_SUFFIX, PARQUET_SUFFIX))
        return list(names)


def create_bucket(name: str, latency_s: float, shards_folder: str, stats_file: Callable[[str], bytes]) -> Bucket:
    """A fresh bucket `simstore://name` (one of that name before is forgotten)."""
    fsspec.register_implementation(PROTOCOL, SimStore, clobber=True)
    _BUCKETS[name] = bucket = Bucket(latency_s, shards_folder, stats_file)
    return bucket


class _Upload(io.BytesIO):
    """A file open for writing: one put when closed."""

    def __init__(self, fs: SimStore, path: str):
        super().__init__()
        self.fs, self.path = fs, path

    def close(self) -> None:
        if not self.closed:
            self.fs.pipe_file(self.path, self.getvalue())
        super().close()


class SimStore(AbstractFileSystem):
    """The fsspec filesystem over the buckets (the methods OutputDir and RunIndex use)."""

    protocol = PROTOCOL

    def _bucket(self, path: str) -> tuple[Bucket, str]:
        path = self._strip_protocol(path).rstrip("/")
        return _BUCKETS[path.split("/", 1)[0]], path

    def ls(self, path, detail=False, **kwargs):
        bucket, path = self._bucket(path)
        names = bucket.children(path)
        bucket.request("list", max(1, math.ceil(len(names) / LIST_PAGE)))
        if not names and not self._is_dir(bucket, path):
            raise FileNotFoundError(path)
        return [self._entry(bucket, n) for n in names] if detail else names

    def _is_dir(self, bucket: Bucket, path: str) -> bool:
        prefix = path + "/"
        return any(p.startswith(prefix) for p in bucket.files) or (path == bucket.shards_folder and bool(bucket.markers))

    def _entry(self, bucket: Bucket, path: str) -> dict:
        if path in bucket.files:
            return {"name": path, "size": len(bucket.files[path]), "type": "file"}
        if bucket.marker_of(path) is not None or bucket.marker_of(path, PARQUET_SUFFIX) is not None:
            return {"name": path, "size": 0, "type": "file"}
        if self._is_dir(bucket, path):
            return {"name": path, "size": 0, "type": "directory"}
        raise FileNotFoundError(path)

    def info(self, path, **kwargs):
        bucket, path = self._bucket(path)
        bucket.request("head")
        return self._entry(bucket, path)

    def cat_file(self, path, start=None, end=None, **kwargs):
        bucket, path = self._bucket(path)
        bucket.request("get")
        if path in bucket.files:
            data = bucket.files[path]
        elif (shard := bucket.marker_of(path)) is not None:
            data = bucket.stats_file(shard)
        else:
            raise FileNotFoundError(path)
        return data[start:end]

    def cat(self, path, recursive=False, on_error="raise", **kwargs):
        """Many paths: CONCURRENCY requests at a time; `on_error` as fsspec's."""
        if isinstance(path, str):
            return self.cat_file(path)

        def one(p):
            try:
                return p, self.cat_file(p)
            except FileNotFoundError as exc:
                if on_error == "raise":
                    raise
                return p, exc

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            found = dict(pool.map(one, path))
        return {p: d for p, d in found.items() if on_error != "omit" or not isinstance(d, Exception)}

    def pipe_file(self, path, value, **kwargs):
        bucket, path = self._bucket(path)
        bucket.request("put")
        bucket.files[path] = bytes(value)

    def _open(self, path, mode="rb", **kwargs):
        if "w" in mode:
            return _Upload(self, path)
        return io.BytesIO(self.cat_file(path))

    def mv(self, path1, path2, **kwargs):
        bucket, source = self._bucket(path1)
        _, target = self._bucket(path2)
        bucket.request("rename")
        bucket.files[target] = bucket.files.pop(source)

    def rm(self, path, recursive=False, maxdepth=None):
        bucket, path = self._bucket(path)
        bucket.request("delete")
        doomed = [p for p in bucket.files if p == path or (recursive and p.startswith(path + "/"))]
        for p in doomed:
            del bucket.files[p]
        if recursive and (path == bucket.shards_folder or bucket.shards_folder.startswith(path + "/")):
            bucket.markers.clear()

    def makedirs(self, path, exist_ok=False):
        """Object stores have no folders: nothing to do, no request."""

    def mkdir(self, path, create_parents=True, **kwargs):
        """As `makedirs`."""

    def invalidate_cache(self, path=None):
        """Nothing is cached: every listing asks the store."""
