"""A discrete-event stand-in for the Ray handle the shard pool drives (pipeline/run/pool.py).

`SimRay` has what `ShardPool` calls on `ray` (wait, get, kill, cluster_resources) and hands it
actors (`start_actor`), a progress counter (`start_counter`) and a clock (`clock`): simulated time,
which `wait` moves to the next shard that ends, or by its timeout. Each actor labels its shards one
after another, each taking a drawn duration; at set rates an actor dies part-way through a shard
(every shard it holds then raises Ray's ActorDiedError) or hangs on one (the pool's shard timeout
kills it). A shard that ends gets its done-marker in the simulated store before `get` returns its
stats, as a real actor writes its stats file before returning. The simulation's own bookkeeping
time is kept in `cpu_seconds`, so that the driver's can be told apart (docs/benchmarks.md, "The
driver at scale").
"""
from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass

import numpy as np
from ray.exceptions import ActorDiedError

from pipeline.bench.sim_shards import SimShards
from pipeline.bench.sim_store import Bucket
from pipeline.read.shardlist import shard_id


@dataclass
class SimBehaviour:
    """How the simulated actors behave."""

    shard_seconds: float = 60.0  # median shard duration
    spread: float = 0.3  # sigma of the duration's lognormal
    death_rate: float = 0.0  # per shard: its actor dies part-way through it
    hang_rate: float = 0.0  # per shard: it never ends (the pool's shard timeout ends it)
    seed: int = 0


class _Ref:
    __slots__ = ("actor", "url", "attempt", "started_at", "done_at", "failed", "dropped")

    def __init__(self, actor, url: str, attempt: int, started_at: float, done_at: float, failed: bool):
        self.actor, self.url, self.attempt = actor, url, attempt
        self.started_at, self.done_at, self.failed = started_at, done_at, failed
        self.dropped = False  # its actor was killed: it never ends


class _Value:
    """A ref already holding its value (the progress counter's answers)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


class _Method:
    def __init__(self, call):
        self.remote = call


class SimActor:
    def __init__(self, sim: SimRay, number: int):
        self.sim, self.number = sim, number
        self.free_at = sim.now  # when its last shard ends
        self.died_at = math.inf
        self.refs: list[_Ref] = []
        self.label_shard = _Method(self._label)

    def _label(self, url: str, attempt: int, expected: int | None) -> _Ref:
        sim = self.sim
        start = sim.clock_cpu()
        begin = max(sim.now, self.free_at)
        duration = sim.rng.lognormal(math.log(sim.behaviour.shard_seconds), sim.behaviour.spread)
        fate = sim.rng.random()
        if self.died_at < math.inf or fate < sim.behaviour.death_rate:
            sim.deaths += self.died_at == math.inf
            self.died_at = min(self.died_at, begin + duration * sim.rng.random())
            ref = _Ref(self, url, attempt, begin, self.died_at, True)
        elif fate < sim.behaviour.death_rate + sim.behaviour.hang_rate:
            sim.hangs += self.free_at < math.inf  # actors that hang (later shards wait behind the first)
            ref = _Ref(self, url, attempt, begin, math.inf, False)
        else:
            ref = _Ref(self, url, attempt, begin, begin + duration, False)
        self.free_at = ref.done_at
        self.refs.append(ref)
        sim.schedule(ref)
        sim.cpu_seconds += sim.clock_cpu() - start
        return ref


class SimCounter:
    """The progress counter: the simulation reports no images in flight."""

    def __init__(self):
        self.snapshot = _Method(lambda keys: _Value({}))


class SimRay:
    def __init__(self, bucket: Bucket, shards: SimShards, actors: int, behaviour: SimBehaviour):
        self.bucket, self.shards, self.behaviour = bucket, shards, behaviour
        self.rng = np.random.default_rng(behaviour.seed)
        self.now = 0.0
        self.cpus = float(actors + 1)  # one CPU per actor and one for the driver's side (ActorPlan)
        self.started = self.deaths = self.hangs = self.kills = 0
        self.cpu_seconds = 0.0
        self.clock_cpu = time.thread_time
        self._ends: list[tuple[float, int, _Ref]] = []  # heap of the refs yet to end
        self._ended: dict[_Ref, None] = {}  # ended, not yet fetched by `get` (in the order they ended)
        self._scheduled = 0

    def schedule(self, ref: _Ref) -> None:
        if ref.done_at < math.inf:  # a hung shard ends only when its actor is killed
            self._scheduled += 1
            heapq.heappush(self._ends, (ref.done_at, self._scheduled, ref))

    def _advance(self, to: float) -> None:
        """Time moves on to `to` (never back: a dead actor's late shards end at its death, now)."""
        self.now = max(self.now, to)
        while self._ends and self._ends[0][0] <= self.now:
            ref = heapq.heappop(self._ends)[2]
            if not ref.dropped:
                self._ended[ref] = None

    def _next_end(self) -> float:
        while self._ends and self._ends[0][2].dropped:
            heapq.heappop(self._ends)
        return self._ends[0][0] if self._ends else math.inf

    def clock(self) -> float:
        return self.now

    def start_actor(self, plan, job, progress) -> SimActor:
        self.started += 1
        return SimActor(self, self.started)

    def start_counter(self) -> SimCounter:
        return SimCounter()

    def cluster_resources(self) -> dict:
        return {"CPU": self.cpus}

    def kill(self, actor) -> None:
        if isinstance(actor, SimActor):
            self.kills += 1
            actor.died_at = min(actor.died_at, self.now)
            for ref in actor.refs:
                ref.dropped = True
                self._ended.pop(ref, None)
            actor.refs = []

    def wait(self, refs: list, num_returns: int = 1, timeout: float | None = None) -> tuple[list, list]:
        """The refs ended by now; when fewer than `num_returns`, time moves to the next end or by `timeout`."""
        start = self.clock_cpu()
        wanted = set(refs)
        self._advance(self.now)
        ready = [r for r in self._ended if r in wanted]
        if len(ready) < num_returns and timeout != 0:
            upcoming = self._next_end()
            self._advance(upcoming if timeout is None else min(upcoming, self.now + timeout))
            ready = [r for r in self._ended if r in wanted]
        ready = ready[:num_returns]
        chosen = set(ready)
        self.cpu_seconds += self.clock_cpu() - start
        return ready, [r for r in refs if r not in chosen]

    def get(self, ref):
        if isinstance(ref, _Value):
            return ref.value
        self._ended.pop(ref, None)
        if ref.failed:
            raise ActorDiedError()
        shard = shard_id(ref.url)
        self.bucket.markers.add(shard)
        actor = {"host": "sim", "pid": ref.actor.number, "node_id": "sim"}
        return self.shards.stats(shard, ref.url, ref.attempt, actor, ref.started_at, ref.done_at)
