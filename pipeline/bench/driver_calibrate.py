"""The real driver beside its simulation: a local Ray label job of one-sample shards on the stand-in
engine (pipeline/bench/standin.py), its driver's process CPU per shard event measured as
pipeline/bench/driver_case.py measures the simulated one (docs/benchmarks.md, "The driver at scale").
"""
from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

from omegaconf import OmegaConf

from pipeline.bench.driver_case import SHARD_EVENTS, TimedPool
from pipeline.bench.standin import standin_name, standin_ray
from pipeline.config import LabelJobConfig
from pipeline.job import label_job
from pipeline.run.driver import run_label_job
from pipeline.sources.shard_writer import write_shards
from pipeline.sources.synthetic import demo_samples

RATE = 1000.0  # stand-in images per second: the host path, not the engine, sets the pace


def real_run(shards: int, actors: int, classes: str) -> dict:
    """Label `shards` one-sample shards on `actors` local Ray actors; the driver's figures."""
    work = Path(tempfile.mkdtemp(prefix="nerve-driver-calibration-"))
    try:
        write_shards(demo_samples(shards, seed=0, min_size=32, max_size=64), str(work / "in"), prefix="cal",
                     per_shard=1, progress=False)
        job = label_job(OmegaConf.merge(OmegaConf.structured(LabelJobConfig), {
            "engine": {"name": standin_name(RATE), "device": "cpu"}, "dataset": {"classes": classes},
            "input": {"shards": str(work / "in")}, "output": {"dir": str(work / "out"), "mode": "overwrite"},
            "ray": {"num_actors": actors, "local_num_cpus": actors + 1}, "progress": False}))
        pool, events = TimedPool(), Counter()
        with standin_ray(job.ray):  # run_label_job uses this Ray
            start = time.perf_counter()
            result = run_label_job(job, lambda name, **data: events.update([name]), pool=pool)
            seconds = time.perf_counter() - start
        attempts = sum(events[name] for name in SHARD_EVENTS)
        return {"shards": result.shards, "actors": actors, "done": len(result.done), "shard_events": attempts,
                "driver_cpu_ms_per_event": 1000 * pool.cpu_seconds / attempts, "pool_seconds": pool.seconds,
                "seconds": seconds, "seconds_per_shard_per_actor": pool.seconds * actors / result.shards}
    finally:
        shutil.rmtree(work, ignore_errors=True)
