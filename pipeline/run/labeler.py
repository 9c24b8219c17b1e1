"""The `Labeler` Ray actor: one engine, one shard per call.

The engine is built on the first shard rather than at actor start, so that the driver (and the
GPU-pinning test) can create actors and ask what they were given without loading models. Inside a
call, tar reading, decoding and `engine.prepare` run ahead in background threads while the engine
works on batches; the shard's outputs are written by the actor itself and only its stats travel
back to the driver. The driver may hand an actor its next shard before the current one ends
(ray.shards_ahead): the calls run side by side, but only one at a time queues batches for the
actor's one engine thread (its "turn", from its first batch until its last is queued), so the next
shard reads and decodes while the current one runs its last batches and writes, its first batch
runs the moment the current one's last ends, and the engine never waits for a shard to fill.

A batch the engine fails on is split and retried (`run_bisecting`); a tar that breaks after some
samples gives outputs and stats marked `partial`, which the driver retries and never counts as done.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np

from nerve_core.errors import NerveError
from pipeline.job import ActorJob
from pipeline.output.outputdir import OutputDir
from pipeline.output.walk_stats import WalkStats
from pipeline.output.writers import ShardResult
from pipeline.read.prefetch import PrefetchMap, SourceError
from pipeline.read.reader import (
    Sample,
    allow_pixels,
    check_gt_values,
    decode_sample,
    raw_samples,
)
from pipeline.read.shardlist import shard_id
from pipeline.reasons import BAD_IMAGE_LABELS, ENGINE, NO_IMAGE_LABELS, PREPARE, reason_of
from pipeline.run.batch_split import run_bisecting
from pipeline.run.cpuclock import CpuClock
from pipeline.run.metrics import ActorMetrics, job_tag
from pipeline.score.scoring import confusion_matrix, image_scores, reduce_zero_label, reduce_zero_label_ids

ENCODE_BEHIND = 2  # batches a shard's encoder may lag its engine: one slow to encode does not stop the engine
PROGRESS_EVERY_S = 0.2  # a shard tells the progress counter of its images at most this often


class EngineBuildError(NerveError):
    """The engine could not be built: retrying the shard elsewhere would fail the same way."""


class ShardReadError(RuntimeError):
    """The shard could not be read at all (missing, not a tar, empty file): nothing was written."""


class Labeler:
    def __init__(self, job: ActorJob, progress=None):
        self.job = job
        self.max_pixels = job.config.input.max_image_pixels
        allow_pixels(self.max_pixels)
        self.progress = progress
        self._engine = None
        self._vocab = None
        self._building = threading.Lock()  # concurrent shard calls build the engine once
        self._turn = threading.Lock()  # held by the shard that queues batches for the engine thread
        self._process_mark: float | None = None  # the process's CPU clock when the last shard ended
        self._marking = threading.Lock()
        self.metrics = ActorMetrics(job_tag(job.config.output.dir))  # gauges and histograms for Prometheus
        # Every shard's batches run here, in the order their turns queue them: the next shard's first
        # batch waits in this thread's queue, not behind a wake-up of the next shard's own thread.
        self._engine_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")

    # ---- what Ray gave this actor ------------------------------------------------------------
    def info(self) -> dict:
        import ray

        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "node_id": ray.get_runtime_context().get_node_id(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "engine_device": None if self._engine is None else str(self._engine.device),
        }

    @property
    def engine(self):
        if self._engine is None:
            with self._building:
                return self._build_engine()
        return self._engine

    def _build_engine(self):
        """Under self._building. The vocabulary is set first: a concurrent shard call that sees the
        engine (unlocked) must see the vocabulary too."""
        if self._engine is None:
            from nerve_core.vocab import Vocabulary

            self._vocab = Vocabulary(self.job.classes)
            try:
                from nerve_core.engine import build_engine

                if self.job.torch_threads:
                    import torch

                    torch.set_num_threads(self.job.torch_threads)
                self._engine = build_engine(self.job.engine)
            except Exception as exc:
                detail = str(exc) if isinstance(exc, NerveError) else f"{type(exc).__name__}: {exc}"
                raise EngineBuildError(f"cannot build the engine: {detail}") from exc
        return self._engine

    def _process_cpu(self, shard_start: float) -> float:
        """The process's CPU seconds since the last shard ended on this actor (since `shard_start`
        for the first): shards that overlap would otherwise count the same seconds twice."""
        with self._marking:
            now = time.process_time()
            since = shard_start if self._process_mark is None else self._process_mark
            self._process_mark = now
        return now - since

    # ---- one shard ---------------------------------------------------------------------------
    def label_shard(self, url: str, attempt: int = 0, expected_samples: int | None = None) -> dict:
        """Label one shard and write its outputs; `expected_samples` (from the shards' manifest.json)
        catches a tar cut exactly between two samples, which reads as a shorter, intact shard."""
        build_start = time.perf_counter()
        engine = self.engine  # built on the first shard; timed apart from the labeling
        shard = shard_id(url)
        start = time.perf_counter()
        state = _ShardState(shard, self.job, len(self._vocab))
        state.seconds["engine_build"] = start - build_start
        with _ShardBatches(self._engine_thread) as batches:
            read_error = self.read_batches(url, expected_samples, lambda batch: batches.engine(self._flush, batch, state, attempt,
                                                                                                 batches), state.cpu, state.seconds)
        out = OutputDir(self.job.config.output.dir)
        with state.cpu.stage("write"):  # rows and COCO results; the stats file, the done-marker, last
            out.write_shard(state.result, None, self.job.config.output.parquet_compression)
        state.seconds["total"] = time.perf_counter() - start
        stats = state.stats(url, attempt, self.info(), engine.fingerprint()["digest"], self._process_cpu(state.cpu.started))
        stats["expected_samples"] = expected_samples
        if read_error is not None:  # the rows before the damage are kept; the driver decides
            stats.update(partial=True, read_error=f"unreadable after {state.samples} samples: {read_error}")
        out.write_stats(shard, stats)
        return stats

    def cache_shard(self, url: str, attempt: int = 0, expected_samples: int | None = None, qk_dtype: str = "engine") -> dict:
        """Store the engine's features of one shard for `nerve tune` (pipeline.tune.cache_writer)."""
        from pipeline.tune.cache_writer import ShardCache

        cache = ShardCache(self.engine, self._vocab, self.job, shard_id(url), qk_dtype, self.progress, attempt)
        read_error = self.read_batches(url, expected_samples, cache.add, CpuClock())
        return cache.close(url, attempt, read_error)

    def read_batches(self, url: str, expected_samples: int | None, on_batch, cpu: CpuClock,
                     seconds: dict | None = None) -> str | None:
        """Read and decode the shard in background threads, handing `on_batch` lists of (sample,
        prepared engine input or None) with engine.cfg.batch_size decodable samples (the last one
        may have fewer), during this shard's turn on the engine; `cpu` counts the reading and
        decoding threads' CPU time, seconds["waiting"] the wait for the turn. Returns the tar's
        read error, if any; a shard with no sample at all raises."""
        engine = self.engine
        batch: list[tuple[Sample, object]] = []
        read_error, samples, decodable = None, 0, 0
        with _EngineTurn(self._turn, on_batch) as turn:
            try:
                decoded = PrefetchMap(partial(self._decode, cpu=cpu), cpu.timed(raw_samples(url), "read"),
                                      self.job.config.ray.decode_threads, self.job.config.ray.prefetch)
                for sample, prepared in decoded:
                    batch.append((sample, prepared))
                    samples, decodable = samples + 1, decodable + (prepared is not None)
                    if decodable >= engine.cfg.batch_size:
                        with cpu.stage("metrics"):
                            self.metrics.queued.set(decoded.ready())
                        turn(batch)
                        batch, decodable = [], 0
            except SourceError as exc:  # the tar itself: truncated, unreadable, vanished
                read_error = str(exc)
            if batch:
                turn(batch)
        if seconds is not None:
            seconds["waiting"] = turn.waited
        if read_error is None and expected_samples is not None and samples < expected_samples:
            read_error = f"the tar ended cleanly but its manifest.json lists {expected_samples} samples"
        if read_error is not None and samples == 0:
            raise ShardReadError(f"shard {shard_id(url)} unreadable: {read_error}")
        return read_error

    def _decode(self, raw: dict, cpu: CpuClock) -> tuple[Sample, object]:
        """Decode thread: sample + prepared engine input (None when the sample is an error)."""
        dataset = self.job.config.dataset
        with cpu.stage("decode"):
            sample = decode_sample(raw, self.max_pixels)
            if dataset.reduce_zero_label:  # GT and json labels hold the stored mask's ids: both shift
                if sample.gt is not None:
                    sample.gt = reduce_zero_label(sample.gt, dataset.ignore_index)
                if isinstance(sample.meta.get("labels"), list):
                    sample.meta["labels"] = reduce_zero_label_ids(sample.meta["labels"])
            if sample.ok and sample.gt is not None:
                sample.error = check_gt_values(sample.gt, len(self._vocab), dataset.ignore_index)
            if sample.ok and self.engine.cfg.mode == "wsss":
                sample.error = self._check_image_labels(sample)
        if not sample.ok:
            return sample, None
        try:
            with cpu.stage("prepare"):
                prepared = self.engine.prepare(sample.image)
        except Exception as exc:
            sample.error = PREPARE.error(f"{type(exc).__name__}: {exc}")
            return sample, None
        sample.image = None  # the engine input holds what is still needed
        return sample, prepared

    def _check_image_labels(self, sample: Sample) -> str | None:
        labels = sample.meta.get("labels")
        dataset = self.job.config.dataset
        if labels is None and dataset.labels_from_gt and sample.gt is not None:
            ignore = dataset.ignore_index
            labels = [int(c) for c in np.unique(sample.gt) if c != ignore]
            sample.meta["labels"] = labels
        if labels is None:
            return NO_IMAGE_LABELS.error("engine.mode=wsss needs json labels (or dataset.labels_from_gt=true)")
        if not isinstance(labels, list):
            return BAD_IMAGE_LABELS.error(f"json labels must be a list of class ids, got {labels!r}")
        bad = [c for c in labels if not (isinstance(c, int) and not isinstance(c, bool) and 0 <= c < len(self._vocab))]
        return BAD_IMAGE_LABELS.error(f"{bad} are not class ids") if bad else None

    def _flush(self, batch, state: _ShardState, attempt: int, batches: _ShardBatches) -> None:
        """Engine thread: run the engine on the batch's decodable samples; record them in the
        shard's encoder thread."""
        good = [(s, p) for s, p in batch if p is not None]
        outputs = {}
        engine_seconds = 0.0
        if good:
            engine_start = time.perf_counter()
            with state.cpu.stage("engine"):
                outputs = self._run(good)
            engine_seconds = time.perf_counter() - engine_start
            state.seconds["engine"] += engine_seconds
        with state.cpu.stage("metrics"):
            self.metrics.batch(len(batch), engine_seconds)
        batches.encode(self._record, batch, outputs, state, attempt)

    def _record(self, batch, outputs: dict, state: _ShardState, attempt: int) -> None:
        """Encode masks (PNG, RLE) and score, in sample order; runs while the engine does the next batch."""
        for sample, _ in batch:
            state.record(sample, outputs.get(id(sample)))
        if self.progress is not None:
            with state.cpu.stage("progress"):
                state.report_progress(self.progress, attempt)

    def _run(self, good) -> dict:
        """id(sample) -> Segmentation or error string; a failing batch is split and retried."""
        engine, confidence = self.engine, self.job.config.output.confidence
        wsss = engine.cfg.mode == "wsss"

        def run(items):
            labels = [s.meta["labels"] for s, _ in items] if wsss else None
            return engine.run([p for _, p in items], self._vocab, labels, confidence=confidence)

        outputs = run_bisecting(run, good)
        return {id(s): ENGINE.error(out) if isinstance(out, str) else out for (s, _), out in zip(good, outputs)}


class _EngineTurn:
    """Calls `on_batch` once this shard holds the engine; holds it until the block ends.

    The turn is taken at the first batch, not at the start of the call, so that a shard handed
    over early reads and decodes its first batch while the shard before it still runs.
    """

    def __init__(self, lock: threading.Lock, on_batch):
        self.lock, self.on_batch, self.held = lock, on_batch, False
        self.waited = 0.0  # seconds spent waiting for the turn

    def __call__(self, batch) -> None:
        if not self.held:
            start = time.perf_counter()
            self.lock.acquire()
            self.held, self.waited = True, time.perf_counter() - start
        self.on_batch(batch)

    def __enter__(self) -> _EngineTurn:
        return self

    def __exit__(self, *exc) -> None:
        if self.held:
            self.held = False
            self.lock.release()


class _ShardBatches:
    """One shard's batches in flight: each runs on the actor's engine thread, then is recorded in
    this shard's encoder thread, in order.

    At most one of the shard's batches waits for the engine behind the one it runs, and at most
    ENCODE_BEHIND wait for the encoder (submitting waits), so decoded samples and label maps never
    pile up in memory. The shard's turn ends when its last batch is queued, so the next shard's
    first batch queues right behind it. Leaving the context waits for every batch and re-raises
    the first error, if any.
    """

    def __init__(self, engine_thread: ThreadPoolExecutor):
        self._engine_thread = engine_thread
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode")
        self._at_engine: deque = deque()
        self._at_encoder: deque = deque()

    def engine(self, fn, *args) -> None:
        """Queue fn(*args) on the engine thread (called by the shard's thread, during its turn)."""
        while len(self._at_engine) > 1:
            self._at_engine.popleft().result()
        self._at_engine.append(self._engine_thread.submit(fn, *args))

    def encode(self, fn, *args) -> None:
        """Queue fn(*args) on the encoder thread (called by the engine thread)."""
        while len(self._at_encoder) >= ENCODE_BEHIND:
            self._at_encoder.popleft().result()
        self._at_encoder.append(self._encoder.submit(fn, *args))

    def _wait(self) -> None:
        for pending in (self._at_engine, self._at_encoder):  # engine first: its batches queue encodes
            while pending:
                pending.popleft().result()

    def __enter__(self) -> _ShardBatches:
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                self._wait()
        finally:
            for future in self._at_engine:  # an error: this shard's batches not yet run are dropped
                future.cancel()
            while self._at_engine:  # one may be running: it must not encode after the encoder is gone
                pending = self._at_engine.popleft()
                if not pending.cancelled():
                    pending.exception()
            self._encoder.shutdown(wait=True)


class _ShardState:
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

    def stats(self, url: str, attempt: int, actor: dict, engine_digest: str, process_cpu: float) -> dict:
        """`process_cpu`: the actor process's CPU seconds counted for this shard (Labeler._process_cpu)."""
        busy = self.seconds["total"] - self.seconds.get("waiting", 0.0)  # the wait for the previous shard left out
        return {
            "shard": self.shard,
            "url": url,
            "attempt": attempt,
            "samples": self.samples,
            "ok": self.ok,
            "errors": self.errors,
            "errors_by_reason": dict(self.reasons),
            "partial": False,  # True: the tar broke part-way (see read_error); not a done shard
            "gt_images": self.gt_images,
            "confusion": self.confusion.tolist() if self.gt_images else None,
            "seconds": dict(self.seconds),
            "cpu_seconds": self.cpu.seconds(process=process_cpu),
            "images_per_second": self.samples / busy if busy > 0 else None,
            "engine_images_per_second": self.ok / self.seconds["engine"] if self.seconds["engine"] > 0 else None,
            "fingerprint": self.fingerprint,
            "engine_fingerprint": engine_digest,
            "actor": actor,
            "started_at": self.started_at,  # wall clock; a shard handed over early overlaps the one before
            "finished_at": time.time(),
            "walk": self.walk.to_json(),
        }
