"""The shards not yet done, run on a pool of Labeler actors: one path for the label job and the
tune cache, which keep the same directory layout (docs/design.md, "The output directory")."""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from pipeline.output.outputdir import OutputDir
from pipeline.output.run_index import RunIndex
from pipeline.read.shardlist import manifest_counts, shard_id
from pipeline.run.figures import RunFigures
from pipeline.run.pool import PoolRun, ShardPool
from pipeline.run.stopping import StopRequest


@dataclass
class JobResult:
    """How a run went: shard counts, what finished and failed, and the merged summary."""

    shards: int  # input shards
    skipped: int  # done before this run
    retries: int = 0
    done: list[str] = field(default_factory=list)  # labeled by this run
    failed: list[dict] = field(default_factory=list)  # shards that used up their retries, with the reason
    not_done: list[str] = field(default_factory=list)  # input shards without a complete stats file
    summary: dict = field(default_factory=dict)
    stopped: str = ""  # the signal that stopped the run early (pipeline.run.stopping); a rerun resumes

    @property
    def ok(self) -> bool:
        return not self.failed and not self.not_done


def run_pending(out: OutputDir, urls: list[str], connect: Callable[[], AbstractContextManager], cfg, vocab,
                fingerprint: dict, emit, task=None, stop: StopRequest | None = None,
                pool=ShardPool) -> tuple[JobResult, RunFigures, RunIndex]:
    """Run every shard of `urls` not done in `out` (ShardPool's `task`, on the Ray that `connect()`
    yields, entered only when there is work), record the failures; (how it went, this run's
    figures, the run index with every done shard). The caller writes the summary. `pool`: what
    makes the pool from (ray, cfg, vocab, fingerprint, emit, task); the driver simulation's
    (pipeline/bench/driver_case.py) hands it its stand-in actors and clock.

    What is done comes from the run index, not from reading every stats file; each shard done here
    joins the index as its stats arrive, and the index is brought in line with the stats files once
    more at the end (one listing), so that partial shards and anything the pool did not see count.
    `stop`: takes SIGTERM and SIGINT while the pool runs (pipeline/run/stopping.py; None: the
    signals keep their handlers)."""
    index = out.index(len(vocab), writable=True)
    done_before = index.done()
    todo = [u for u in urls if shard_id(u) not in done_before]
    run = PoolRun()
    try:
        if todo:
            # The handlers go in after Ray's start: ray.init sets a SIGTERM handler of its own.
            with connect() as ray, (stop.handling() if stop else nullcontext()):
                run = pool(ray, cfg, vocab, fingerprint, emit, task, stop=stop).run(todo, manifest_counts(todo), index.add)
    finally:
        index.flush()  # what finished is recorded even when the run stops on an error
    out.record_failures(run.failed)
    index.reconcile(out.markers())
    done_now = index.done()
    result = JobResult(shards=len(urls), skipped=len(urls) - len(todo), retries=run.retries, done=run.done,
                       failed=run.failed, not_done=[shard_id(u) for u in urls if shard_id(u) not in done_now],
                       stopped=stop.signal_name if stop else "")
    return result, run.figures, index
