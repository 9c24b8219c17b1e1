"""`ShardStats`, the one record of a shard's stats file: the release-0.1.0 files read and write back
byte for byte, the label job and the tune cache write the keys they always wrote, and a stats file
older than a key still reads."""
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import LabelJobConfig
from pipeline.job import ActorJob
from pipeline.output.outputdir import OutputDir
from pipeline.output.shard_stats import CacheIndex, ShardStats
from pipeline.read.reader import Sample
from pipeline.run.busy import busy_seconds
from pipeline.run.shard_tally import ShardTally

RELEASE_RUN = Path(__file__).parent / "fixtures" / "release-0.1.0" / "run"
LABEL_KEYS = {"actor", "attempt", "confusion", "cpu_seconds", "engine_fingerprint", "engine_images_per_second", "errors",
              "errors_by_reason", "expected_samples", "fingerprint", "finished_at", "gt_images", "images_per_second", "ok",
              "partial", "samples", "seconds", "shard", "started_at", "url", "walk"}
CACHE_KEYS = {"shard", "url", "attempt", "samples", "ok", "errors", "errors_by_reason", "partial", "no_gt", "images",
              "layers", "qk_dtype", "bytes", "seconds", "fingerprint", "finished_at"}


@pytest.mark.parametrize("path", sorted((RELEASE_RUN / "shards").glob("*.stats.json")), ids=lambda p: p.name)
def test_release_0_1_0_stats_read_and_write_back_unchanged(path):
    data = json.loads(path.read_text())
    stats = ShardStats.from_json(data)
    assert stats.to_json() == data and set(data) == LABEL_KEYS
    assert stats.actor_pid == data["actor"]["pid"] and not stats.partial and stats.cache is None
    assert pickle.loads(pickle.dumps(stats)) == stats  # what an actor's call returns through Ray


def test_output_dir_reads_the_release_run_as_shard_stats():
    out = OutputDir(str(RELEASE_RUN))
    stats = out.stats()
    assert sorted(stats) == ["demo-000000", "demo-000001", "demo-000002"] == sorted(out.done_shards())
    assert sum(s.samples for s in stats.values()) == 9 and sum(s.errors for s in stats.values()) == 1


def _tally(num_classes: int = 3) -> ShardTally:
    job = ActorJob(LabelJobConfig(), (("a",), ("b",), ("c",)), "fp")
    return ShardTally("s-000000", job, num_classes)


def test_a_labeled_shard_writes_the_keys_of_every_release_and_partial_adds_its_read_error(tmp_path):
    tally = _tally()
    tally.record(Sample(key="bad", image_id=0, error="decode_image: broken"), None)
    tally.seconds.update(total=1.0, waiting=0.0, engine_build=0.0)
    stats = tally.stats("s-000000.tar", 0, {"pid": 7}, "engine", 0.5, expected_samples=None, read_error=None)
    assert set(stats.to_json()) == LABEL_KEYS and stats.errors_by_reason == {"decode_image": 1}
    cut = tally.stats("s-000000.tar", 1, {"pid": 7}, "engine", 0.5, expected_samples=4, read_error="truncated")
    assert set(cut.to_json()) == LABEL_KEYS | {"read_error"} and cut.partial
    assert cut.read_error == "unreadable after 1 samples: truncated"
    out = OutputDir(str(tmp_path))
    out.write_stats(cut)
    assert out.stats() == {"s-000000": cut} and out.done_shards() == set()


def test_a_cache_shard_writes_its_index_flat_and_reads_back_as_a_cache(tmp_path):
    index = CacheIndex(images=[{"file": "s/000000.safetensors", "key": "k"}], layers=[{"name": "up", "grid": [2, 2]}],
                       qk_dtype="float16", bytes=10, no_gt=1)
    stats = ShardStats("s", url="s.tar", samples=2, ok=2, seconds={"engine": 0.1, "total": 0.2}, fingerprint="f",
                       finished_at=5.0, cache=index)
    assert set(stats.to_json()) == CACHE_KEYS
    out = OutputDir(str(tmp_path))
    out.write_stats(stats)
    assert out.stats()["s"] == stats and out.stats()["s"].cache.no_gt == 1


def test_stats_older_than_a_key_read_with_its_default():
    old = {"shard": "s", "samples": 3, "ok": 3, "errors": 0, "finished_at": 10.0, "seconds": {"total": 4.0},
           "actor": {"pid": 1}}  # before started_at, gt_images, walk, ...
    stats = ShardStats.from_json(old)
    assert (stats.started_at, stats.gt_images, stats.walk, stats.errors_by_reason) == (None, 0, None, {})
    assert stats.span() == (6.0, 10.0) and busy_seconds([stats]) == {1: 4.0}
    assert ShardStats.from_json({"samples": 1}, "named-by-its-file").shard == "named-by-its-file"


def test_the_tally_scores_against_gt_and_counts_engine_errors():
    from nerve_core.engine import Segmentation

    tally = _tally()
    gt = np.array([[0, 1], [2, 255]], np.uint8)
    tally.record(Sample(key="a", image_id=1, gt=gt), Segmentation(np.array([[0, 1], [1, 0]], np.uint8)))
    tally.record(Sample(key="b", image_id=2), "engine: RuntimeError: out of memory")
    tally.seconds.update(total=1.0, engine=0.5)
    stats = tally.stats("s.tar", 0, {"pid": 1}, "e", 0.0, None, None)
    assert (stats.samples, stats.ok, stats.errors, stats.gt_images) == (2, 1, 1, 1)
    assert stats.errors_by_reason == {"engine": 1} and np.asarray(stats.confusion).sum() == 3
    assert stats.engine_images_per_second == 2.0
