"""Run totals and the run index against the merge of every shard's stats (the old summary)."""
from __future__ import annotations

import math

import fsspec
import numpy as np
import pytest

from pipeline.output.exact_sum import ExactSum
from pipeline.output.run_index import RunIndex
from pipeline.output.run_totals import RunTotals, merge_stats
from pipeline.output.shard_stats import ShardStats
from pipeline.output.walk_stats import WalkStats


def random_stats(rng, k: int, n: int, heads: int = 3) -> list[ShardStats]:
    """n shards of a k-class run: errors of several reasons, unscored shards, partial ones, walks
    with one odd head count among them when heads differ."""
    out = []
    for i in range(n):
        walk = WalkStats()
        for _ in range(int(rng.integers(0, 4))):
            h = heads + (i == 7)
            walk.add({"head_weights": list(rng.random(h)), "negative_fraction": list(rng.random(h)),
                      "global_rows_kept": list(rng.random(h)), "local_rows_kept": list(rng.random(h)),
                      "mass_moved": float(rng.random() * 2) if rng.random() < 0.8 else None})
        errors = int(rng.integers(0, 3))
        scored = rng.random() < 0.8
        out.append(ShardStats(
            shard=f"s-{i:06d}", url=f"/in/s-{i:06d}.tar", samples=5 + errors, ok=5, errors=errors,
            errors_by_reason={"decode_image": errors} if errors == 1 else {"seg_size": 1, "engine": errors - 1} if errors else {},
            partial=bool(rng.random() < 0.1), gt_images=5 if scored else 0, finished_at=float(i),
            confusion=rng.integers(0, 10**6, (k, k + 1)) if scored else None, walk=walk.to_json()))
    return out


def test_exact_sums_do_not_depend_on_the_order_of_additions_or_merges():
    rng = np.random.default_rng(0)
    values = list(rng.standard_normal(2000) * 10.0 ** rng.integers(-12, 12, 2000))
    whole = ExactSum()
    for v in values:
        whole.add(v)
    parts = [ExactSum(values[i:i + 97]) for i in range(0, 2000, 97)]
    merged = ExactSum()
    for part in reversed(parts):
        merged.merge(part)
    assert whole.value == merged.value == math.fsum(values)
    assert sum(values) != math.fsum(values)  # the case where plain summing would differ


@pytest.mark.parametrize("k", [21, 171])
def test_totals_folded_in_parts_and_any_order_equal_the_merge_of_every_shard(k):
    rng = np.random.default_rng(k)
    stats = random_stats(rng, k, 60)
    names = [f"c{i}" for i in range(k)]
    expected = merge_stats(stats, names, {"digest": "f"})
    assert expected["partial_shards"] and expected["errors_by_reason"] and expected["walk"]["images"]
    assert "per_head" not in expected["walk"]  # shard 7 has another head count
    shuffled = [stats[i] for i in rng.permutation(len(stats))]
    parts = [RunTotals(k) for _ in range(4)]
    for i, s in enumerate(shuffled):
        parts[i % 4].add(s)
    totals = RunTotals(k)
    for part in parts[::-1]:
        totals.merge(RunTotals.from_json(part.to_json()))  # through JSON, as the index stores them
    assert totals.summary(names, {"digest": "f"}, [s.shard for s in stats if s.partial]) == expected


def test_per_head_means_when_every_shard_has_the_same_heads():
    stats = [s for s in random_stats(np.random.default_rng(3), 5, 20) if s.shard != "s-000007"]
    walk = merge_stats(stats, list("abcde"), {"digest": "f"})["walk"]
    assert len(walk["per_head"]["head_weights"]) == 3


def memory_store(name: str) -> tuple:
    fs = fsspec.filesystem("memory")
    root = f"/index-test-{name}"
    if fs.exists(root):
        fs.rm(root, recursive=True)
    return fs, root


def test_an_index_reloaded_holds_the_same_shards_and_totals(monkeypatch):
    import pipeline.output.run_index as run_index

    monkeypatch.setattr(run_index, "PART_SHARDS", 16)
    fs, root = memory_store("reload")
    stats = [s for s in random_stats(np.random.default_rng(1), 21, 50) if not s.partial]
    by_name = {s.shard: s for s in stats}
    index = RunIndex(fs, root, 21, lambda shards: {s: by_name[s] for s in shards if s in by_name})
    for s in stats:
        index.add(s)
    index.flush()
    assert len(fs.ls(f"{root}/index")) == math.ceil(len(stats) / 16)
    again = RunIndex(fs, root, 21, lambda shards: {}).load()
    assert set(again.part_of) == set(by_name)
    names = [f"c{i}" for i in range(21)]
    assert again.totals().summary(names, {"digest": "f"}, []) == merge_stats(stats, names, {"digest": "f"})


def test_reconcile_drops_shards_whose_marker_is_gone_and_indexes_markers_it_lacks(monkeypatch):
    """A driver killed after some done-markers were written but before the index part was: the
    next run finds them by name and reads only them; markers removed by hand leave the index."""
    import pipeline.output.run_index as run_index

    monkeypatch.setattr(run_index, "PART_SHARDS", 8)
    fs, root = memory_store("reconcile")
    stats = random_stats(np.random.default_rng(2), 21, 40)
    done = [s for s in stats if not s.partial]
    on_disk = {s.shard: s for s in stats}
    reads: list[str] = []

    def read_stats(shards):
        reads.extend(shards)
        return {s: on_disk[s] for s in shards if s in on_disk}

    first = RunIndex(fs, root, 21, read_stats)
    for s in done[:20]:
        first.add(s)
    first.flush()  # the rest of the markers were written, then the driver died
    removed = {done[3].shard, done[12].shard}
    for shard in removed:
        del on_disk[shard]
    reads.clear()
    index = RunIndex(fs, root, 21, read_stats).load()
    index.reconcile(set(on_disk))
    assert set(index.partial) == {s.shard for s in stats if s.partial}
    assert set(index.part_of) == {s.shard for s in done} - removed
    unindexed = {s.shard for s in stats} - {s.shard for s in done[:20]}
    rebuilt = {s.shard for s in done[:16]} - removed  # the two parts that lost a shard: done[0:8], done[8:16]
    assert sorted(reads) == sorted(unindexed | rebuilt)  # the third part's shards are never read
    names = [f"c{i}" for i in range(21)]
    kept = [s for s in done if s.shard not in removed]
    reloaded = RunIndex(fs, root, 21, read_stats).load()
    assert reloaded.totals().summary(names, {"digest": "f"}, []) == merge_stats(kept, names, {"digest": "f"})


def test_dropping_a_shard_not_yet_in_a_part_refolds_the_others():
    fs, root = memory_store("pending")
    stats = [s for s in random_stats(np.random.default_rng(4), 21, 12) if not s.partial][:5]
    by_name = {s.shard: s for s in stats}
    index = RunIndex(fs, root, 21, lambda shards: {s: by_name[s] for s in shards if s in by_name})
    for s in stats:
        index.add(s)
    index.drop({stats[1].shard})
    names = [f"c{i}" for i in range(21)]
    kept = [s for s in stats if s is not stats[1]]
    assert index.done() == {s.shard for s in kept}
    assert index.totals().summary(names, {"digest": "f"}, []) == merge_stats(kept, names, {"digest": "f"})
