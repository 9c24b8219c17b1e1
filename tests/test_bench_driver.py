"""`nerve bench driver`'s simulation: the store's requests are counted and cost their latency; the
label job's driver runs over the simulated actors to the end, each shard done once in the run
index and the summary that of the shards' stats; and the driver's work per shard event does not
grow with the shards done (docs/benchmarks.md, "The driver at scale")."""
import cProfile
import io
import pstats
import time

import pyarrow.parquet as pq

from pipeline.bench.driver_case import DriverCase, case_job, measure
from pipeline.bench.driver_sim import SimBehaviour
from pipeline.bench.sim_shards import SimShards
from pipeline.bench.sim_store import CONCURRENCY, create_bucket
from pipeline.output.outputdir import OutputDir
from pipeline.output.run_index import INDEX_DIR
from pipeline.output.run_totals import merge_stats
from pipeline.run.driver import job_description
from pipeline.run.pool import ShardPool


def _stats_file(shard):
    return f'{{"shard": "{shard}"}}'.encode()


def test_the_store_counts_each_request_by_kind_and_makes_it_wait():
    latency = 0.02
    bucket = create_bucket("t-store", latency, "t-store/out/shards", _stats_file)
    out = OutputDir("simstore://t-store/out")
    fs, root = out.fs, out.root
    start = time.perf_counter()
    fs.pipe(f"{root}/summary.json", b"{}")
    assert fs.exists(f"{root}/summary.json") and not fs.exists(f"{root}/nothing")
    assert time.perf_counter() - start >= 3 * latency
    assert dict(bucket.requests) == {"put": 1, "head": 2}

    bucket.markers.update(f"s{i}" for i in range(2 * CONCURRENCY))
    assert out.markers() == bucket.markers  # one listing, the Parquet files beside the markers left out
    assert bucket.requests["list"] == 1
    start = time.perf_counter()
    found = out.read_stats(sorted(bucket.markers))
    took = time.perf_counter() - start
    assert set(found) == bucket.markers and bucket.requests["get"] == 2 * CONCURRENCY
    assert 2 * latency <= took < CONCURRENCY * latency  # two waves of concurrent gets, not one get after another

    out.write_summary({"a": 1})  # atomically: a put under a temporary name, then a rename
    assert out.summary() == {"a": 1} and bucket.requests["rename"] == 1 and bucket.requests["put"] == 2
    fs.rm(f"{root}/summary.json")
    assert bucket.requests["delete"] == 1 and not fs.exists(f"{root}/summary.json")


def test_the_driver_labels_every_shard_once_through_deaths_and_hangs_and_sums_them():
    case = DriverCase(shards=1000, actors=10, latency_ms=0, classes="voc21", samples=4,
                      behaviour=SimBehaviour(death_rate=0.01, hang_rate=0.003, seed=1))
    figures = measure(case, "t-run")
    assert figures["deaths"] > 0 and figures["hangs"] > 0
    assert figures["kills"] >= figures["deaths"] + figures["hangs"]  # every dead and every hung actor was killed
    assert figures["events"]["retry"] > 0 and figures["failed"] == 0
    assert figures["done"] == figures["indexed"] == 1000 and figures["left_on_resume"] == 0
    assert figures["shard_events"] == 1000 + figures["events"]["retry"]

    out = OutputDir("simstore://t-run/out")
    parts = out.fs.cat(sorted(out.fs.ls(f"{out.root}/{INDEX_DIR}")))
    indexed = [s for data in parts.values() for s in pq.read_table(io.BytesIO(data)).column("shard").to_pylist()]
    assert len(indexed) == len(set(indexed)) == 1000

    _, vocab, fingerprint = job_description(case_job(case, out.url))
    shards = SimShards(len(vocab), case.samples, fingerprint["digest"], case.behaviour.seed)
    summary = out.summary()
    expected = merge_stats([shards.stats(s) for s in sorted(indexed)], vocab.names, fingerprint)
    assert summary["last_run"]["shards_labeled"] == 1000
    assert {k: v for k, v in summary.items() if k != "last_run"} == expected


def _calls_per_event(shards: int, name: str, monkeypatch, actors: int = 10) -> float:
    """Function calls made in the pool's run (its loop, the index's adds, the simulated Ray) per shard event."""
    profile, run = cProfile.Profile(), ShardPool.run

    def profiled_run(*args, **kwargs):
        profile.enable()
        try:
            return run(*args, **kwargs)
        finally:
            profile.disable()

    with monkeypatch.context() as patched:
        patched.setattr(ShardPool, "run", profiled_run)
        figures = measure(DriverCase(shards=shards, actors=actors, latency_ms=0, classes="voc21", samples=4), name)
    return pstats.Stats(profile).total_calls / figures["shard_events"]


def test_the_drivers_work_per_shard_event_does_not_grow_with_the_shards_done(monkeypatch):
    # Function calls, not seconds: a count the machine's load cannot move. A cost that grew with
    # the shards done (a Python-level pass over the done ones each event) would grow 8x here.
    few, many = _calls_per_event(400, "t-few", monkeypatch), _calls_per_event(3200, "t-many", monkeypatch)
    assert many < 1.1 * few, (few, many)


def test_the_drivers_work_per_shard_event_does_not_grow_with_the_actors(monkeypatch):
    # 200 and 1000 actors both finish shards faster than the bar is drawn (once a second), so what
    # is left per event is the event's own work; a pass over every actor or running shard at each
    # tick would grow 5x.
    few = _calls_per_event(3000, "t-200", monkeypatch, actors=200)
    many = _calls_per_event(3000, "t-1000", monkeypatch, actors=1000)
    assert many < 1.25 * few, (few, many)
