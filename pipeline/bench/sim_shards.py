"""The shards of the driver simulation: each one's stats, made from its name alone.

A shard's figures (samples, errors, its confusion matrix over the run's classes) are fixed by its
name, so the stats an actor "returns", the stats file the store makes on read and a test's expected
summary all agree. The confusion matrix is one of a few sparse templates, as a VOC-like image holds
a few classes: the driver gets it as Ray hands an array over, a read-only array over the bytes it
received (docs/benchmarks.md, "The driver at scale").
"""
from __future__ import annotations

import json
import zlib

import numpy as np

from pipeline.output.shard_stats import ShardStats

TEMPLATES = 8  # distinct confusion matrices
CLASSES_PER_IMAGE = 4


class SimShards:
    def __init__(self, num_classes: int, samples: int, fingerprint: str, seed: int = 0):
        self.num_classes, self.samples, self.fingerprint = num_classes, samples, fingerprint
        rng = np.random.default_rng(seed)
        self._confusions = [_sparse_confusion(rng, num_classes, samples).tobytes() for _ in range(TEMPLATES)]

    def stats(self, shard: str, url: str = "", attempt: int = 0, actor: dict | None = None,
              started_at: float = 0.0, finished_at: float = 0.0) -> ShardStats:
        """The shard's stats; `actor` and the times are the simulated actor's (None: the file's)."""
        key = zlib.crc32(shard.encode())
        errors = key % 3 if self.samples > 2 else 0
        return ShardStats(
            shard=shard, url=url, attempt=attempt, samples=self.samples, ok=self.samples - errors, errors=errors,
            errors_by_reason={"decode": errors} if errors else {}, fingerprint=self.fingerprint,
            seconds={"engine": finished_at - started_at, "total": finished_at - started_at}, finished_at=finished_at,
            expected_samples=self.samples, gt_images=self.samples - errors,
            confusion=self._confusion(key % TEMPLATES), actor=actor, started_at=started_at)

    def _confusion(self, template: int) -> np.ndarray:
        received = bytes(self._confusions[template])  # the buffer a shard's result arrives in
        return np.frombuffer(received, dtype=np.int64).reshape(self.num_classes, self.num_classes + 1)

    def stats_file(self, shard: str) -> bytes:
        """The shard's stats file as its actor wrote it."""
        return json.dumps(self.stats(shard, f"/in/{shard}.tar", actor={"host": "sim", "pid": 0}).to_json()).encode()


def _sparse_confusion(rng: np.random.Generator, num_classes: int, samples: int) -> np.ndarray:
    """(K, K+1) pixel counts of `samples` images, each showing a few classes, mostly right."""
    confusion = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
    for _ in range(samples):
        classes = rng.choice(num_classes, size=min(CLASSES_PER_IMAGE, num_classes), replace=False)
        for gt in classes:
            confusion[gt, gt] += int(rng.integers(1000, 50000))
            confusion[gt, rng.choice(classes)] += int(rng.integers(0, 5000))
    return confusion
