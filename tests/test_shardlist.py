"""Shard lists on an object store: one listing per directory, never a request per shard."""
from __future__ import annotations

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from pipeline.read.shardlist import expand_shards
from pipeline.run.preflight import unreadable_shards


@pytest.fixture
def store(monkeypatch):
    """A memory:// bucket of 40 shards in two folders, counting the requests made to it."""
    fs = fsspec.filesystem("memory")
    if fs.exists("/bucket"):
        fs.rm("/bucket", recursive=True)
    for i in range(40):
        fs.pipe(f"/bucket/{'a' if i < 30 else 'b'}/s-{i:06d}.tar", b"x")
    calls = {"ls": 0, "probe": 0}

    def counted(name, kind):
        method = getattr(MemoryFileSystem, name)

        def call(self, *args, **kwargs):
            calls[kind] += 1
            return method(self, *args, **kwargs)

        monkeypatch.setattr(MemoryFileSystem, name, call)

    counted("ls", "ls")
    for name in ("exists", "isdir", "isfile"):  # info too, through these
        counted(name, "probe")
    yield calls
    fs.rm("/bucket", recursive=True)


def test_a_brace_pattern_costs_one_listing_per_directory(store):
    urls = expand_shards(["memory://bucket/a/s-{000000..000029}.tar", "memory://bucket/b/s-{000030..000039}.tar"])
    assert urls == [f"memory://bucket/{'a' if i < 30 else 'b'}/s-{i:06d}.tar" for i in range(40)]
    assert store == {"ls": 2, "probe": 0}


def test_a_list_of_directories_lists_each_once(store):
    urls = expand_shards(["memory://bucket/b", "memory://bucket/a/"])
    assert [u.rsplit("/", 1)[-1] for u in urls] == [f"s-{i:06d}.tar" for i in [*range(30, 40), *range(30)]]
    assert store["probe"] == 0 and store["ls"] == 3  # the bucket, then each folder


def test_the_preflight_finds_shards_in_their_listing_and_asks_only_about_the_rest(store):
    urls = [f"memory://bucket/a/s-{i:06d}.tar" for i in range(30)] + ["memory://bucket/a/gone.tar"]
    assert unreadable_shards(urls) == ["memory://bucket/a/gone.tar"]
    assert store["ls"] == 1 and store["probe"] == 1  # one listing; one question about the absent shard


def test_a_missing_directory_entry_is_kept_for_the_preflight_to_name(store):
    assert expand_shards("memory://bucket/c/s-000001.tar") == ["memory://bucket/c/s-000001.tar"]
