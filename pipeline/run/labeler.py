"""The `Labeler` Ray actor: one engine, one shard per call.

The engine is built on the first shard rather than at actor start, so that the driver (and the
GPU-pinning test) can create actors and ask what they were given without loading models. Inside a
call, tar reading, decoding and `engine.prepare` run ahead in background threads while the engine
works on batches; the shard's outputs are written by the actor itself and only its stats travel
back to the driver. The driver may hand an actor its next shard before the current one ends
(ray.shards_ahead): the calls run side by side, taking turns on the actor's one engine thread
(pipeline.run.engine_turn).

A batch the engine fails on is split and retried (`run_bisecting`); a tar that breaks after some
samples gives outputs and stats marked `partial`, which the driver retries and never counts as done.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from functools import partial

from pipeline.job import ActorJob
from pipeline.output.outputdir import OutputDir
from pipeline.output.shard_stats import ShardStats
from pipeline.output.writers import prime_row_conversion
from pipeline.read.prefetch import PrefetchMap, SourceError
from pipeline.read.reader import Sample, allow_pixels, raw_samples
from pipeline.read.samples import SamplePreparer
from pipeline.read.shardlist import shard_id
from pipeline.reasons import ENGINE, PREPARE
from pipeline.run.batch_split import run_bisecting
from pipeline.run.cpuclock import CpuClock
from pipeline.run.engine_turn import EngineTurn, ShardBatches, engine_thread
from pipeline.run.shard_tally import ShardTally
from pipeline.run.telemetry import ActorMetrics, job_tag


class ShardReadError(RuntimeError):
    """The shard could not be read at all (missing, not a tar, empty file): nothing was written."""


class Labeler:
    def __init__(self, job: ActorJob, progress=None):
        self.job = job
        allow_pixels(job.config.input.max_image_pixels)
        self.progress = progress
        self._engine = None
        self.vocab = None
        self._samples: SamplePreparer | None = None
        self._building = threading.Lock()  # concurrent shard calls build the engine once
        self._turn = threading.Lock()  # held by the shard that queues batches for the engine thread
        self._process_mark: float | None = None  # the process's CPU clock when the last shard ended
        self._marking = threading.Lock()
        self.metrics = ActorMetrics(job_tag(job.config.output.dir))  # gauges and histograms for Prometheus
        self._engine_thread = engine_thread()

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
        """Under self._building. The vocabulary and the sample checks are set first: a concurrent
        shard call that sees the engine (unlocked) must see them too."""
        if self._engine is None:
            from nerve_core.vocab import Vocabulary

            self.vocab = Vocabulary(self.job.classes)
            config = self.job.config
            self._samples = SamplePreparer(config.dataset, len(self.vocab), config.input.max_image_pixels,
                                           config.engine.mode == "wsss")
            if self.job.torch_threads:
                import torch

                torch.set_num_threads(self.job.torch_threads)
            prime_row_conversion()
            self._engine = self.job.build_engine()
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
    def label_shard(self, url: str, attempt: int = 0, expected_samples: int | None = None) -> ShardStats:
        """Label one shard and write its outputs; `expected_samples` (from the shards' manifest.json)
        catches a tar cut exactly between two samples, which reads as a shorter, intact shard."""
        build_start = time.perf_counter()
        engine = self.engine  # built on the first shard; timed apart from the labeling
        shard = shard_id(url)
        start = time.perf_counter()
        tally = ShardTally(shard, self.job, len(self.vocab))
        tally.seconds["engine_build"] = start - build_start
        with ShardBatches(self._engine_thread) as batches:
            read_error = self.read_batches(url, expected_samples, lambda batch: batches.engine(self._flush, batch, tally, attempt,
                                                                                                 batches), tally.cpu, tally.seconds)
        out = OutputDir(self.job.config.output.dir)
        with tally.cpu.stage("write"):  # rows and COCO results; the stats file, the done-marker, last
            out.write_shard(tally.result, self.job.config.output.parquet_compression)
        tally.seconds["total"] = time.perf_counter() - start
        stats = tally.stats(url, attempt, self.info(), engine.fingerprint()["digest"], self._process_cpu(tally.cpu.started),
                            expected_samples, read_error)  # partial after a read error: the driver decides
        out.write_stats(stats)
        return stats

    def run_task(self, task, url: str, attempt: int = 0, expected_samples: int | None = None) -> ShardStats:
        """Another job's task on this actor's engine and reader (pipeline.run.pool.ShardPool's
        `task`: the tune cache's pipeline.tune.cache_writer.CacheShard)."""
        return task(self, url, attempt, expected_samples)

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
        with EngineTurn(self._turn, on_batch) as turn:
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
        with cpu.stage("decode"):
            sample = self._samples(raw)
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

    def _flush(self, batch, tally: ShardTally, attempt: int, batches: ShardBatches) -> None:
        """Engine thread: run the engine on the batch's decodable samples; record them in the
        shard's encoder thread."""
        good = [(s, p) for s, p in batch if p is not None]
        outputs = {}
        engine_seconds = 0.0
        if good:
            engine_start = time.perf_counter()
            with tally.cpu.stage("engine"):
                outputs = self._run(good)
            engine_seconds = time.perf_counter() - engine_start
            tally.seconds["engine"] += engine_seconds
        with tally.cpu.stage("metrics"):
            self.metrics.batch(len(batch), engine_seconds)
        batches.encode(self._record, batch, outputs, tally, attempt)

    def _record(self, batch, outputs: dict, tally: ShardTally, attempt: int) -> None:
        """Encode masks (PNG, RLE) and score, in sample order; runs while the engine does the next batch."""
        for sample, _ in batch:
            tally.record(sample, outputs.get(id(sample)))
        if self.progress is not None:
            with tally.cpu.stage("progress"):
                tally.report_progress(self.progress, attempt)

    def _run(self, good) -> dict:
        """id(sample) -> Segmentation or error string; a failing batch is split and retried."""
        engine, confidence = self.engine, self.job.config.output.confidence
        wsss = engine.cfg.mode == "wsss"

        def run(items):
            labels = [s.meta["labels"] for s, _ in items] if wsss else None
            return engine.run([p for _, p in items], self.vocab, labels, confidence=confidence)

        outputs = run_bisecting(run, good)
        return {id(s): ENGINE.error(out) if isinstance(out, str) else out for (s, _), out in zip(good, outputs)}
