"""One configuration of `nerve bench driver`: the label job's driver over simulated actors and store.

Runs in a process of its own (`python -m pipeline.bench.driver_case JSON`, printing JSON), so that
its peak RSS is its own. Three phases, each with the store's requests counted by kind: the run
(`run_pending` as the label job calls it, on a `SimRay`: index, pool, reconcile), the resume decision
of a second run over the same store (the index loaded and brought in line with the markers, and the
shards left to do), and the summary (`write_summary` with the run's index, as the driver writes it).
The driver's CPU per shard event is the pool's process CPU time less the simulation's own, over the
attempts that ended (done, retried or failed); see docs/benchmarks.md, "The driver at scale".
"""
from __future__ import annotations

import json
import resource
import sys
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field

from omegaconf import OmegaConf

from pipeline.bench.driver_sim import SimBehaviour, SimRay
from pipeline.bench.sim_shards import SimShards
from pipeline.bench.sim_store import create_bucket
from pipeline.config import LabelJobConfig
from pipeline.job import label_job
from pipeline.output.outputdir import OutputDir
from pipeline.output.summary import write_summary
from pipeline.read.shardlist import shard_id
from pipeline.run.driver import job_description
from pipeline.run.pending import run_pending
from pipeline.run.pool import ShardPool

SHARD_EVENTS = ("done", "retry", "failed")  # the pool's events that end an attempt


@dataclass
class DriverSettings:
    """What every configuration of the bench shares: `nerve bench driver`'s options of these names."""

    latency_ms: float = 25.0  # every store request
    classes: str = "coco_stuff"  # configs/classes: coco_stuff has 171
    samples: int = 1000  # images per shard
    shards_ahead: int = 1
    max_retries: int = 3
    shard_timeout_s: float = 600.0
    poll_s: float = 0.5
    behaviour: SimBehaviour = field(default_factory=SimBehaviour)


@dataclass(kw_only=True)
class DriverCase(DriverSettings):
    """One configuration: the shared settings at a number of shards and actors."""

    shards: int
    actors: int

    @classmethod
    def from_json(cls, data: dict) -> DriverCase:
        return cls(**{**data, "behaviour": SimBehaviour(**data.get("behaviour", {}))})


def case_job(case: DriverCase, url: str):
    """The typed label job the simulated driver runs."""
    return label_job(OmegaConf.merge(OmegaConf.structured(LabelJobConfig), {
        "dataset": {"classes": case.classes}, "engine": {"device": "cpu"}, "output": {"dir": url, "mode": "overwrite"},
        "ray": {"num_actors": case.actors, "shards_ahead": case.shards_ahead, "max_retries": case.max_retries,
                "shard_timeout_s": case.shard_timeout_s, "poll_s": case.poll_s},
        "progress": False}))


class TimedPool:
    """Makes run_pending's pool (with `pool_options`: ShardPool's keywords) and keeps the process
    CPU time and wall time of its runs."""

    def __init__(self, **pool_options):
        self.pool_options, self.cpu_seconds, self.seconds = pool_options, 0.0, 0.0

    def __call__(self, *args, **kwargs) -> ShardPool:
        pool = ShardPool(*args, **kwargs, **self.pool_options)
        run = pool.run

        def timed_run(*run_args, **kwargs):
            cpu, wall = time.process_time(), time.perf_counter()
            try:
                return run(*run_args, **kwargs)
            finally:
                self.cpu_seconds += time.process_time() - cpu
                self.seconds += time.perf_counter() - wall

        pool.run = timed_run
        return pool


def measure(case: DriverCase, bucket_name: str = "bench") -> dict:
    url = f"simstore://{bucket_name}/out"
    job = case_job(case, url)
    resolved, vocab, fingerprint = job_description(job)
    shards = SimShards(len(vocab), case.samples, fingerprint["digest"], case.behaviour.seed)
    bucket = create_bucket(bucket_name, case.latency_ms / 1000, f"{bucket_name}/out/shards", shards.stats_file)
    out = OutputDir(url)
    out.prepare(resolved, fingerprint, "overwrite")
    urls = [f"/sim/in/shard-{i:07d}.tar" for i in range(case.shards)]
    sim = SimRay(bucket, shards, case.actors, case.behaviour)
    pool, events = TimedPool(start_actor=sim.start_actor, start_counter=sim.start_counter, clock=sim.clock), Counter()

    def phase(fn):
        bucket.requests.clear()
        wall, cpu = time.perf_counter(), time.process_time()
        value = fn()
        return value, {"seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu,
                       "requests": dict(bucket.requests)}

    (result, figures, index), run = phase(lambda: run_pending(
        out, urls, lambda: nullcontext(sim), job, vocab, fingerprint, lambda name, **data: events.update([name]),
        pool=pool))
    attempts = sum(events[name] for name in SHARD_EVENTS)
    todo, resume = phase(lambda: _resume_decision(out, len(vocab), urls))
    _, summary_phase = phase(lambda: write_summary(
        out, vocab.names, fingerprint, figures.last_run(sim.now, result.skipped, len(result.failed), result.retries), index))
    return {
        "case": asdict(case), "shard_events": attempts, "events": dict(events),
        "driver_cpu_ms_per_event": 1000 * (pool.cpu_seconds - sim.cpu_seconds) / attempts,
        "simulation_cpu_ms_per_event": 1000 * sim.cpu_seconds / attempts,
        "peak_rss_mb": peak_rss_mb(),
        "simulated_seconds": sim.now, "actors_started": sim.started, "deaths": sim.deaths, "hangs": sim.hangs, "kills": sim.kills,
        "done": len(result.done), "failed": len(result.failed), "indexed": len(index.done()), "left_on_resume": len(todo),
        "run": run, "resume": resume, "summary": summary_phase,
    }


def _resume_decision(out: OutputDir, num_classes: int, urls: list[str]) -> list[str]:
    """What a second run does before handing out work (pipeline/run/pending.py): the shards left to do."""
    done = out.index(num_classes, writable=True).done()
    return [u for u in urls if shard_id(u) not in done]


def peak_rss_mb() -> float:
    """This process's peak resident set (Linux's VmHWM: ru_maxrss keeps the peak of the process
    that started this one across exec, so the bench's own would show through)."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    print(json.dumps(measure(DriverCase.from_json(json.loads(sys.argv[1])))))
