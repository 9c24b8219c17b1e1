"""The shard pool's bookkeeping with shards handed over ahead (ray.shards_ahead), on stand-in
actors and a stand-in `ray` (hand-out order, who is charged when an actor dies, what is timed),
and the labeler's engine turn: two shards on one actor never interleave their engine batches, and
no two batches ever run at once."""
import threading
import time
from collections import deque

import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs.config import load_config
from pipeline.config import LabelJobConfig
from pipeline.job import label_job
from pipeline.output.shard_stats import ShardStats
from pipeline.run import pool as pool_module
from pipeline.run.attempts import Attempt, take_next
from pipeline.run.busy import busy_seconds
from pipeline.run.pool import PoolRun, ShardPool
from tests.faults import in_process_labeler
from tests.shards import make_demo_shards


class _Call:
    def __init__(self, actor, name):
        self.actor, self.name = actor, name

    def remote(self, *args):
        if self.name == "run_task":  # another job's task: run_task(task, url, attempt, expected)
            self.actor.tasks.append(args[0])
            args = args[1:]
        ref = (self.actor.name, args[0], args[1])
        self.actor.calls.append(ref)
        return ref


class _Actor:
    def __init__(self, name):
        self.name, self.calls, self.tasks = name, [], []

    def __getattr__(self, task):
        return _Call(self, task)


class _Ray:
    def __init__(self):
        self.killed = []
        self.results = {}  # ref -> stats, or the exception ray.get raises; absent: still running

    def wait(self, refs, num_returns, timeout):
        ready = [r for r in self.results if r in refs]  # in the order they finished
        return ready[:num_returns], [r for r in refs if r not in ready[:num_returns]]

    def get(self, ref):
        if isinstance(self.results[ref], Exception):
            raise self.results[ref]
        return self.results[ref]

    def cluster_resources(self):
        return {"CPU": 4.0}

    def kill(self, actor):
        self.killed.append(actor)


@pytest.fixture
def pool(monkeypatch):
    started = iter(range(100))
    monkeypatch.setattr(pool_module, "start_labeler", lambda plan, job, progress: _Actor(f"a{next(started)}"))
    monkeypatch.setattr(pool_module, "start_progress_counter", lambda: None)
    cfg = label_job(load_config(LabelJobConfig, ["dataset=demo", "engine.device=cpu", "output.dir=/unused",
                                                 "ray.num_actors=2", "ray.shards_ahead=1", "ray.max_retries=2",
                                                 "ray.shard_timeout_s=60"]))
    from pipeline.run.driver import job_description

    _, vocab, fingerprint = job_description(cfg)
    events = []
    shard_pool = ShardPool(_Ray(), cfg, vocab, fingerprint, lambda name, **data: events.append((name, data.get("shard"))))
    shard_pool.events = events
    return shard_pool


def _queue(*shards):
    return deque(Attempt(f"/in/{s}.tar", s, 0) for s in shards)


def test_hand_out_fills_idle_actors_first_then_one_ahead_each(pool):
    queue, running = _queue("s0", "s1", "s2", "s3", "s4"), {}
    pool._hand_out(queue, running)
    assert [[a.shard for a in held] for held in pool.held] == [["s0", "s2"], ["s1", "s3"]]
    assert [a.shard for a in queue] == ["s4"] and len(running) == 4
    assert [a.actor.name for a in pool.held[0]] == ["a0", "a0"]


def test_a_pool_given_a_task_of_its_own_hands_it_with_every_shard(pool):
    pool.task = task = object()  # the tune cache's CacheShard, as the pool sees it: opaque
    queue, running = _queue("s0", "s1"), {}
    pool._hand_out(queue, running)
    assert [a.tasks for a in pool.actors] == [[task], [task]] and len(running) == 2


def test_a_dead_actor_charges_its_first_shard_and_requeues_the_one_ahead_uncharged(pool):
    queue, running, result = _queue("s0", "s1", "s2", "s3", "s4"), {}, PoolRun()
    pool._hand_out(queue, running)
    dead = pool.held[0][0].actor
    pool._actor_lost(0, running, queue, result, "actor died: killed")
    assert pool.ray.killed == [dead] and pool.actors[0] is None and pool.held[0] == []
    assert {a.shard for a in running.values()} == {"s1", "s3"}  # the other actor's shards run on
    assert [(a.shard, a.attempt, a.charged, a.first) for a in queue] == [
        ("s2", 1, 0, True),  # it was only reading ahead: back at the front, not charged
        ("s4", 0, 0, False),
        ("s0", 1, 1, False),  # the shard the actor was labeling: charged, at the back
    ]
    assert result.retries == 1 and ("requeue", "s2") in pool.events and ("retry", "s0") in pool.events

    # s2 must be first on its actor. With actor 0's slot gone (the cluster lost its room), nothing
    # is handed to actor 1 ahead while s2 heads the queue; once s1 ends there, s2 goes first.
    pool.retired.add(0)
    pool._release(pool.held[1][1])  # actor 1 finishes s3: it has room ahead of s1 again
    running.pop(("a1", "/in/s3.tar", 0))
    pool._hand_out(queue, running)
    assert [a.shard for a in pool.held[1]] == ["s1"] and [a.shard for a in queue] == ["s2", "s4", "s0"]
    pool._release(pool.held[1][0])
    running.pop(("a1", "/in/s1.tar", 0))
    pool._hand_out(queue, running)
    assert [a.shard for a in pool.held[1]] == ["s2", "s4"] and [a.shard for a in queue] == ["s0"]
    assert take_next(deque(), ahead=False) is None


def test_a_shard_that_finished_before_its_actor_died_is_done_not_charged(pool):
    from ray.exceptions import ActorDiedError

    queue, running, result = _queue("s0", "s1", "s2"), {}, PoolRun()
    indexed = []
    pool.on_stats = indexed.append
    pool._hand_out(queue, running)
    first, ahead = pool.held[0]
    # Both outcomes arrive in one tick, the death first: s0's stats must still count.
    pool.ray.results = {ahead.ref: ActorDiedError(), first.ref: ShardStats("s0", samples=4, actor={"host": "h", "pid": 1},
                                                                           seconds={"total": 1.0})}
    outcomes = pool._outcomes(running, timeout=0)
    assert [ref for ref, _ in outcomes] == [first.ref, ahead.ref]
    for ref, outcome in outcomes:
        if ref in running:
            pool._finish(outcome, running.pop(ref), running, queue, result)
    assert result.done == ["s0"] and [s.shard for s in indexed] == ["s0"] and result.figures.images == 4
    # s2 was the actor's first shard when it died: charged, like any shard an actor dies on.
    assert [(a.shard, a.charged) for a in queue] == [("s2", 1)] and result.retries == 1 and pool.held[0] == []


def test_only_the_first_shard_of_an_actor_is_timed_from_when_it_became_first(pool):
    clock = [1000.0]
    pool.clock = lambda: clock[0]
    queue, running, result = _queue("s0", "s1", "s2"), {}, PoolRun()
    pool._hand_out(queue, running)  # s2 is handed to actor 0 at t, ahead of s0
    assert [[a.shard for a in held] for held in pool.held] == [["s0", "s2"], ["s1"]]
    clock[0] += 50
    pool._release(pool.held[0][0])  # s0 ends at t+50: s2 is first from now
    pool._release(pool.held[1][0])
    running.clear()
    running[pool.held[0][0].ref] = pool.held[0][0]
    clock[0] += 50
    pool._timeouts(running, queue, result)  # 100 s since s2 was handed over, 50 s as first: within 60
    assert result.retries == 0 and [a.shard for a in pool.held[0]] == ["s2"]
    clock[0] += 11
    pool._timeouts(running, queue, result)
    assert result.retries == 1 and [(a.shard, a.charged) for a in queue] == [("s2", 1)] and not running


def test_busy_seconds_count_overlapping_shards_once():
    def shard(pid, start, end):
        return ShardStats("s", actor={"pid": pid}, started_at=start, finished_at=end, seconds={"total": end - start})

    stats = [shard(1, 0.0, 2.0), shard(1, 1.5, 3.0), shard(1, 5.0, 6.0), shard(2, 0.0, 1.0),
             ShardStats("s", actor={"pid": 3}, finished_at=10.0, seconds={"total": 4.0})]  # no started_at: end - total
    assert busy_seconds(stats) == pytest.approx({1: 4.0, 2: 1.0, 3: 4.0})


class _TurnCheckingEngine:
    """The real engine, recording which shard each batch is from and the most batches it ever ran
    at once (counted, not raised: an error inside `run` would be taken for a failing batch and
    retried by the bisecting split)."""

    def __init__(self, engine):
        self.engine, self.shards, self.lock = engine, [], threading.Lock()
        self.inside = self.most_inside = 0

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def run(self, prepared, *args, **kwargs):
        with self.lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            time.sleep(0.05)  # long enough that another batch, if it could, would start meanwhile
            return self.engine.run(prepared, *args, **kwargs)
        finally:
            with self.lock:
                self.inside -= 1


def test_two_shards_on_one_actor_take_turns_on_the_engine_and_match_one_at_a_time(ray_session, tiny_models, tmp_path):
    # ray_session: the labeler asks Ray what it was given (`info`), which would start a Ray of its own
    make_demo_shards(tmp_path / "in", 12, per_shard=6, max_size=72)
    alone = in_process_labeler(tiny_models, tmp_path / "alone", "engine.batch_size=2")
    for shard in ("shard-000000", "shard-000001"):
        alone.label_shard(str(tmp_path / "in" / f"{shard}.tar"))
    labeler = in_process_labeler(tiny_models, tmp_path / "both", "engine.batch_size=2")
    engine = labeler._engine = _TurnCheckingEngine(labeler.engine)
    flush = labeler._flush

    def flush_noting_the_shard(batch, tally, *rest):
        engine.shards.append(tally.shard)
        flush(batch, tally, *rest)

    labeler._flush = flush_noting_the_shard
    stats = {}

    def label(shard):
        stats[shard] = labeler.label_shard(str(tmp_path / "in" / f"{shard}.tar"))

    threads = [threading.Thread(target=label, args=(s,)) for s in ("shard-000000", "shard-000001")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert engine.most_inside == 1  # one batch at a time on the actor's engine
    assert len(stats) == 2 and all(s.ok == 6 for s in stats.values())
    # Each shard's three batches ran in one unbroken turn.
    runs = [engine.shards[0]] + [b for a, b in zip(engine.shards, engine.shards[1:]) if a != b]
    assert len(engine.shards) == 6 and len(runs) == 2
    # One of the two waited for the other's turn, and says so.
    assert max(s.seconds["waiting"] for s in stats.values()) > 0.02
    for shard in stats:
        rows = {r["key"]: r["mask_png"] for r in pq.read_table(tmp_path / "both" / "shards" / f"{shard}.parquet").to_pylist()}
        ref = {r["key"]: r["mask_png"] for r in pq.read_table(tmp_path / "alone" / "shards" / f"{shard}.parquet").to_pylist()}
        assert rows == ref and len(rows) == 6
    assert np.isfinite([s.images_per_second for s in stats.values()]).all()


def test_the_progress_counter_imports_neither_torch_nor_the_reader():
    """Its actor process starts at every job: a torch import there costs seconds of CPU."""
    import subprocess
    import sys

    code = "import sys, pipeline.run.progress_counter; print('torch' in sys.modules, 'pipeline.read.reader' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == ["False", "False"]
