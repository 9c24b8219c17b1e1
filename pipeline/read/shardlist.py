"""Turn `input.shards` into an explicit, ordered list of shard URLs.

Accepts brace patterns, directories (every *.tar in them), single files or URLs, and lists of
these; local or remote through fsspec. The list is explicit so that every actor reads exactly the
shard it was handed: no resampling, no node splitting.
"""
from __future__ import annotations

import json
import re
import threading

from braceexpand import braceexpand

from nerve_core.errors import ConfigError, NotFound
from pipeline.storage import filesystem, join

SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")


def shard_id(url: str) -> str:
    """The shard's file stem: `.../train-000003.tar` -> `train-000003` (names its outputs)."""
    name = str(url).rstrip("/").rsplit("/", 1)[-1]
    for suffix in SHARD_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _as_list(spec) -> list[str]:
    if spec is None or spec == "" or spec == []:
        raise ConfigError("input.shards is empty: give a shard file, brace pattern, directory or list")
    if isinstance(spec, str):
        return [spec]
    return [str(s) for s in spec]


def _with_protocol(fs, path: str, original: str) -> str:
    """fsspec strips `s3://`; put it back so that the URL opens again anywhere."""
    protocol = original.split("://", 1)[0] if "://" in original else None
    return f"{protocol}://{path}" if protocol and not path.startswith(f"{protocol}://") else path


class DirectoryListings:
    """Each directory listed once, however many entries name it: a brace pattern over a million
    shards on an object store costs one listing, not a request per shard. Safe to share between
    threads (the preflight asks from a pool)."""

    def __init__(self):
        self._types: dict[tuple, dict[str, str]] = {}
        self._lock = threading.Lock()

    def of(self, fs, directory: str) -> dict[str, str]:
        """name -> "file" or "directory" for what `directory` holds ({} where it cannot be listed)."""
        key = (type(fs), repr(fs.storage_options), directory)  # fsspec makes one instance per thread
        with self._lock:
            if key not in self._types:
                try:
                    listing = fs.ls(directory, detail=True)
                except (OSError, ValueError):  # absent, not a directory, or a store that cannot list there
                    listing = []
                self._types[key] = {e["name"].rstrip("/").rsplit("/", 1)[-1]: e["type"] for e in listing}
            return self._types[key]

    def kind(self, fs, path: str) -> str | None:
        """"file", "directory" or None (not listed beside its siblings: absent, or a store whose
        parent cannot be listed, such as a bare HTTP URL)."""
        parent, _, name = path.rstrip("/").rpartition("/")
        return self.of(fs, parent or "/").get(name) if name else None


def _expand_one(item: str, listings: DirectoryListings) -> list[str]:
    urls = []
    for entry in braceexpand(item):
        fs, path = filesystem(entry)
        if re.search(r"[*?\[]", path):
            found = sorted(fs.glob(path))
            if not found:
                raise NotFound(f"no shards match {entry}")
            urls.extend(_with_protocol(fs, p, entry) for p in found)
            continue
        kind = listings.kind(fs, path)
        if kind == "directory" or (kind is None and fs.isdir(path)):
            folder = path.rstrip("/")
            found = sorted(f"{folder}/{name}" for name, k in listings.of(fs, folder).items()
                           if k == "file" and name.endswith(SHARD_SUFFIXES))
            if not found:
                raise NotFound(f"no *.tar shards in directory {entry}")
            urls.extend(_with_protocol(fs, p, entry) for p in found)
        else:
            urls.append(entry)
    return urls


def expand_shards(spec) -> list[str]:
    """Ordered shard URLs for `spec`; duplicate shard ids are refused (they would share outputs)."""
    listings = DirectoryListings()
    urls = [u for item in _as_list(spec) for u in _expand_one(item, listings)]
    seen = {}
    for url in urls:
        sid = shard_id(url)
        if sid in seen:
            raise ConfigError(f"two shards share the id {sid!r}: {seen[sid]} and {url}")
        seen[sid] = url
    return urls


def read_manifests(urls: list[str]) -> list[dict]:
    """The readable manifest.json files next to the shards (one per shard directory)."""
    manifests = []
    for parent in sorted({u.rsplit("/", 1)[0] if "/" in u else "." for u in urls}):
        fs, path = filesystem(join(parent, "manifest.json"))
        try:
            with fs.open(path, "r") as f:
                manifest = json.load(f)
        except (OSError, ValueError):  # absent or unreadable: no manifest for these shards
            continue
        if isinstance(manifest, dict):
            manifests.append(manifest)
    return manifests


def manifest_counts(urls: list[str]) -> dict[str, int]:
    """Sample counts per shard id from the manifest.json next to the shards, where one exists."""
    counts = {}
    for manifest in read_manifests(urls):
        try:
            counts.update({s["name"]: int(s["samples"]) for s in manifest.get("shards", [])})
        except (KeyError, TypeError, ValueError):
            continue
    wanted = {shard_id(u) for u in urls}
    return {k: v for k, v in counts.items() if k in wanted}
