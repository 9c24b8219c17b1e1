"""`ShardTally`: what the shard being labeled has produced so far (rows, COCO results, confusion,
counters, seconds), and its `ShardStats` when it ends."""
from __future__ import annotations

import time
from collections import Counter

import numpy as np

from pipeline.job import ActorJob
from pipeline.output.shard_stats import ShardStats
from pipeline.output.walk_stats import WalkStats
from pipeline.output.writers import ShardResult
from pipeline.read.reader import Sample
from pipeline.reasons import ENGINE, reason_of
from pipeline.run.cpuclock import CpuClock
from pipeline.score.scoring import confusion_matrix, image_scores

PROGRESS_EVERY_S = 0.2  # a shard tells the progress counter of its images at most this often


class ShardTally:
    """Rows, COCO results, confusion and counters of the shard being labeled."""

    def __init__(self, shard: str, job: ActorJob, num_classes: int):
        self.shard = shard
        self.fingerprint = job.fingerprint
        self.ignore_index = job.config.dataset.ignore_index
        self.num_classes = num_classes
        self.result = ShardResult(shard, job.fingerprint)
        self.confusion = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
        self.gt_images = 0
        self.ok = self.errors = 0
        self.reasons: Counter = Counter()
        self.seconds = {"engine": 0.0}
        self.started_at = time.time()
        self.walk = WalkStats()
        self.cpu = CpuClock()  # thread CPU seconds per stage (reported as cpu_seconds)
        self.reported, self.reported_at = (0, 0), float("-inf")  # what the progress counter has been sent, and when

    @property
    def samples(self) -> int:
        return self.ok + self.errors

    def report_progress(self, counter, attempt: int) -> None:
        """Send the progress counter the images not yet sent, at most every PROGRESS_EVERY_S: the
        bar needs no more, and each send is a Ray call (the first goes at once)."""
        now = time.monotonic()
        ok, errors = self.ok - self.reported[0], self.errors - self.reported[1]
        if (ok or errors) and now - self.reported_at >= PROGRESS_EVERY_S:
            counter.add.remote(self.shard, attempt, ok, errors)
            self.reported, self.reported_at = (self.ok, self.errors), now

    def record(self, sample: Sample, output) -> None:
        if sample.ok and isinstance(output, str):
            sample.error = output
        elif sample.ok and output is None:
            sample.error = ENGINE.error("no output for this sample")
        if not sample.ok:
            self.errors += 1
            self.reasons[reason_of(sample.error)] += 1
            self.result.add_error(sample.key, sample.image_id, sample.error, occurrence=sample.occurrence)
            return
        self.ok += 1
        cm = None
        if sample.gt is not None:
            self.gt_images += 1
            with self.cpu.stage("score"):
                cm = confusion_matrix(output.labels, sample.gt, self.num_classes, self.ignore_index)
                self.confusion += cm
        with self.cpu.stage("encode"):
            self.result.add_ok(sample.key, sample.image_id, output.labels, output.confidence, sample.occurrence, output.walk,
                               image_scores(cm, output.confidence))
        self.walk.add(output.walk)

    def stats(self, url: str, attempt: int, actor: dict, engine_digest: str, process_cpu: float,
              expected_samples: int | None, read_error: str | None) -> ShardStats:
        """`process_cpu`: the actor process's CPU seconds counted for this shard (Labeler._process_cpu);
        `read_error`: why the tar broke part-way (the shard is then partial), or None."""
        busy = self.seconds["total"] - self.seconds.get("waiting", 0.0)  # the wait for the previous shard left out
        return ShardStats(
            shard=self.shard, url=url, attempt=attempt, samples=self.samples, ok=self.ok, errors=self.errors,
            errors_by_reason=dict(self.reasons), partial=read_error is not None,
            read_error=None if read_error is None else f"unreadable after {self.samples} samples: {read_error}",
            fingerprint=self.fingerprint, seconds=dict(self.seconds), finished_at=time.time(),
            expected_samples=expected_samples, gt_images=self.gt_images,
            confusion=self.confusion if self.gt_images else None,  # the tally ends with the shard
            cpu_seconds=self.cpu.seconds(process=process_cpu),
            images_per_second=self.samples / busy if busy > 0 else None,
            engine_images_per_second=self.ok / self.seconds["engine"] if self.seconds["engine"] > 0 else None,
            engine_fingerprint=engine_digest, actor=actor,
            started_at=self.started_at,  # wall clock; a shard handed over early overlaps the one before
            walk=self.walk.to_json())
