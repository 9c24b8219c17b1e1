"""`ShardPool`: Labeler actors working through a queue of shards (`nerve label`, the tune cache);
`PoolRun`: what it did with them.

Each actor holds the shard it labels and up to ray.shards_ahead more, handed over early so that
their reading and decoding overlap the current shard's last batches and writing (the actor runs
one shard's batches at a time, see pipeline.run.engine_turn). An actor's shards are kept in hand-over
order; the first is the one labeling, the only one timed by ray.shard_timeout_s (from when it
reached the front).

A shard whose actor dies (or that raises, or times out, or whose tar breaks part-way) goes back
to the queue until it has used ray.max_retries extra attempts; then it is recorded as failed.
When an actor dies, its first shard is charged the attempt; the shards handed over ahead of it
return to the front of the queue uncharged, marked to be first on their next actor (so a shard
that kills actors is charged for it there); while one heads the queue, nothing is handed out
ahead, so the next actor to finish its shard takes it. Dead actors are replaced while the cluster still has
room for them; a lost node shrinks the pool. The loop waits on all running attempts with a
timeout, so a death anywhere is seen at the next tick.
"""
from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from nerve_core.errors import NerveError, first_line
from nerve_core.vocab import Vocabulary
from pipeline.config import LabelJobConfig
from pipeline.job import EngineBuildError
from pipeline.output.shard_stats import ShardStats
from pipeline.read.shardlist import shard_id
from pipeline.run.actors import actor_job, cpu_threads, plan_actors, start_labeler, start_progress_counter
from pipeline.run.attempts import Attempt, take_next
from pipeline.run.figures import RunFigures
from pipeline.run.progress import JobProgress
from pipeline.run.stopping import StopRequest
from pipeline.run.telemetry import JobMetrics, job_tag

PROGRESS_EVERY_S = 1.0  # the driver asks the progress counter at most this often


@dataclass
class PoolRun:
    """What the pool did with the shards it was given."""

    retries: int = 0
    done: list[str] = field(default_factory=list)  # shards labeled
    failed: list[dict] = field(default_factory=list)  # shards that used up their retries, with the reason
    figures: RunFigures = field(default_factory=RunFigures)  # done shards', and partial ones' that used up their retries


class ShardPool:
    def __init__(self, ray, cfg: LabelJobConfig, vocab: Vocabulary, fingerprint: dict, emit,
                 task: Callable[..., ShardStats] | None = None, stop: StopRequest | None = None, start_actor=None,
                 start_counter=None, clock: Callable[[], float] = time.monotonic):
        """`task`: None labels each shard (Labeler.label_shard); else a picklable callable the actor
        runs as task(labeler, url, attempt, expected samples) (the tune cache's). `emit(name, **data)`
        is told of "dispatch", "progress", "done", "retry", "requeue", "failed" and "shrink". `stop`: a
        signal's request to wind down (pipeline.run.stopping). `start_actor`, `start_counter` and
        `clock` are Ray's and the real clock but for the driver simulation (pipeline/bench/driver_sim.py),
        which hands in its own with its `ray`."""
        self.ray, self.cfg, self.emit, self.task = ray, cfg, emit, task
        self.stop = stop or StopRequest()
        self.start_actor, self.start_counter = start_actor or start_labeler, start_counter or start_progress_counter
        self.clock = clock
        self.plan = plan_actors(cfg.ray.num_actors, cfg.ray.cpus_per_actor, cfg.engine.device, ray.cluster_resources())
        self.job = actor_job(cfg, vocab, fingerprint, self.plan.device, cpu_threads(cfg, self.plan, ray.cluster_resources()))
        self.actors: list = [None] * self.plan.num_actors
        self.held: list[list[Attempt]] = [[] for _ in range(self.plan.num_actors)]  # each actor's shards, in hand-over order
        self.room: set[int] = set(range(self.plan.num_actors))  # slots holding fewer than 1 + shards_ahead
        self.deadlines: list[tuple[float, int, Attempt]] = []  # heap: when each actor's first shard times out
        self.retired: set[int] = set()  # slots given up because the cluster lost the room for them
        self.progress = self.start_counter()
        self.counts: dict[str, int] = {}  # manifest sample counts: progress totals, short tars caught
        self.metrics = JobMetrics(job_tag(cfg.output.dir))
        self.started: set[int] = set()  # slots that have had an actor: a new one there is a restart
        self.on_stats: Callable[[ShardStats], None] = lambda stats: None
        self._reported_at = float("-inf")

    def actor(self, slot: int):
        if self.actors[slot] is None:
            self.actors[slot] = self.start_actor(self.plan, self.job, self.progress)
            if slot in self.started:
                self.metrics.restarted()
            self.started.add(slot)
        return self.actors[slot]

    def run(self, urls: list[str], counts: dict[str, int], on_stats: Callable[[ShardStats], None] | None = None) -> PoolRun:
        """Work through `urls` (`counts`: the manifests' sample counts); `on_stats` is handed each
        done shard's stats as it arrives (the run index records it)."""
        ray, rc = self.ray, self.cfg.ray
        if on_stats is not None:
            self.on_stats = on_stats
        queue = deque(Attempt(u, shard_id(u), 0) for u in urls)
        running: dict = {}  # ref -> Attempt
        result = PoolRun()
        self.counts = counts
        total = sum(counts.values()) if len(counts) == len(urls) else None
        bar = JobProgress(total, len(urls), enabled=self.cfg.progress)
        try:
            while queue or running:
                if self.stop.requested:
                    self._wind_down(queue, running, result)
                    if self.stop.overdue or not running:
                        break
                self._hand_out(queue, running)
                for ref, outcome in self._outcomes(running, rc.poll_s):
                    if ref in running:  # else it went with its dead actor, handled already
                        self._finish(outcome, running.pop(ref), running, queue, result)
                if queue and not running and len(self.retired) == self.plan.num_actors:
                    self._fail_all(queue.popleft(), queue, result, "no room left in the Ray cluster for a labeler")
                self._timeouts(running, queue, result)
                self._report(bar, running, result)
            self._report(bar, running, result, final=True)
        finally:
            bar.close()
            for actor in self.actors + [self.progress]:
                if actor is not None:
                    ray.kill(actor)
        return result

    def _hand_out(self, queue: deque, running: dict) -> None:
        """Queued shards to actors: first to those with none, then ahead of running ones (only the
        slots with room are looked at: a tick costs the same with a thousand busy actors as with one)."""
        if not queue:
            return
        waiting = sorted(self.room - self.retired)
        for depth in range(1 + self.cfg.ray.shards_ahead):
            for slot in waiting:
                if len(self.held[slot]) == depth:
                    attempt = take_next(queue, ahead=depth > 0)
                    if attempt is None:
                        break
                    self._dispatch(attempt, slot, running)

    def _wind_down(self, queue: deque, running: dict, result: PoolRun) -> None:
        """After a stop signal: hand out nothing more and wait only for the shards being labeled;
        those handed over ahead of them, not started yet, are let go (a rerun labels them)."""
        queue.clear()
        for held in self.held:
            for attempt in held[1:]:
                running.pop(attempt.ref, None)
            del held[1:]
        self.stop.announce(len(running), len(result.done))

    def _dispatch(self, attempt: Attempt, slot: int, running: dict) -> None:
        attempt.slot, attempt.actor = slot, self.actor(slot)
        self.held[slot].append(attempt)
        if len(self.held[slot]) == 1:
            self._now_first(attempt)
        if len(self.held[slot]) > self.cfg.ray.shards_ahead:
            self.room.discard(slot)
        args = (attempt.url, attempt.attempt, self.counts.get(attempt.shard))
        if self.task is None:
            attempt.ref = attempt.actor.label_shard.remote(*args)
        else:
            attempt.ref = attempt.actor.run_task.remote(self.task, *args)
        running[attempt.ref] = attempt
        self.emit("dispatch", shard=attempt.shard, attempt=attempt.attempt, actor=attempt.actor)

    def _release(self, attempt: Attempt) -> None:
        """`attempt` no longer runs on its actor; the next shard there, if any, is now first."""
        held = self.held[attempt.slot]
        was_first = held[0] is attempt
        held.remove(attempt)
        self.room.add(attempt.slot)
        if was_first and held:
            self._now_first(held[0])

    def _now_first(self, attempt: Attempt) -> None:
        """`attempt` is now its actor's first shard: ray.shard_timeout_s counts from here."""
        attempt.started, limit = self.clock(), self.cfg.ray.shard_timeout_s
        if limit <= 0:
            return
        heapq.heappush(self.deadlines, (attempt.started + limit, id(attempt), attempt))
        if len(self.deadlines) > 2 * len(self.held) + 64:  # mostly ended shards' entries (they hold their refs): rebuild
            self.deadlines = [(held[0].started + limit, id(held[0]), held[0]) for held in self.held if held]
            heapq.heapify(self.deadlines)

    def _outcomes(self, running: dict, timeout: float) -> list[tuple]:
        """(ref, stats or the exception it raised) of the next finished attempt, waiting up to `timeout`;
        one `ray.wait` per event, since a wait costs as many refs as are running. When that attempt
        failed, every other finished one is collected too and the results go first, so that a shard
        whose actor died just after it finished counts as done, not as a victim of the death."""
        ready, _ = self.ray.wait(list(running), num_returns=1, timeout=timeout)
        outcomes = [(ref, self._get(ref)) for ref in ready]
        if any(isinstance(outcome, Exception) for _, outcome in outcomes):
            more, _ = self.ray.wait(list(running), num_returns=len(running), timeout=0)
            outcomes += [(ref, self._get(ref)) for ref in more if ref not in ready]
        return sorted(outcomes, key=lambda o: isinstance(o[1], Exception))

    def _get(self, ref):
        from ray.exceptions import RayActorError, RayTaskError

        try:
            return self.ray.get(ref)
        except (RayActorError, RayTaskError) as exc:
            return exc

    def _finish(self, outcome, attempt: Attempt, running: dict, queue: deque, result: PoolRun) -> None:
        from ray.exceptions import RayActorError

        if isinstance(outcome, RayActorError):
            self._actor_lost(attempt.slot, running, queue, result, f"actor died: {first_line(outcome)}")
            return
        self._release(attempt)
        if isinstance(outcome, Exception):  # raised inside the actor, which lives on
            if isinstance(outcome, EngineBuildError) or isinstance(getattr(outcome, "cause", None), EngineBuildError):
                self._fail_all(attempt, queue, result, _task_error(outcome))
            else:
                self._retry_or_fail(attempt, queue, result, _task_error(outcome))
            return
        shard_stats: ShardStats = outcome
        if shard_stats.partial:  # rows before the damage are written; try the tar again
            if self._retry_or_fail(attempt, queue, result, f"partial shard: {shard_stats.read_error}",
                                   partial=True, samples=shard_stats.samples):
                result.figures.add(shard_stats)
                self.metrics.shard(shard_stats, done=False)
            return
        result.figures.add(shard_stats)
        self.metrics.shard(shard_stats, done=True)
        self.on_stats(shard_stats)
        result.done.append(attempt.shard)
        self.emit("done", shard=attempt.shard, attempt=attempt.attempt, stats=shard_stats)

    def _actor_lost(self, slot: int, running: dict, queue: deque, result: PoolRun, reason: str) -> None:
        """The slot's actor died or was killed: its first shard is retried (charged); those ahead of it
        go back to the front of the queue, uncharged, to be first on their next actor."""
        held, self.held[slot] = self.held[slot], []
        self.room.add(slot)
        self.ray.kill(held[0].actor)  # dead or unreachable: never reuse it
        self.actors[slot] = None  # a fresh actor takes the slot on next dispatch
        for attempt in held:
            running.pop(attempt.ref, None)
        for attempt in reversed(held[1:]):
            queue.appendleft(attempt.next_try(charged=False, first=True))
            self.emit("requeue", shard=attempt.shard, attempt=attempt.attempt, reason=reason)
        self._retry_or_fail(held[0], queue, result, reason)
        self._keep_slot(slot)

    def _retry_or_fail(self, attempt: Attempt, queue: deque, result: PoolRun, reason: str, **extra) -> bool:
        """Requeue the shard while retries remain; else record it as failed and return True. After a
        stop signal nothing is requeued or counted: the shard is let go, and a rerun labels it."""
        if self.stop.requested:
            return False
        if attempt.charged < self.cfg.ray.max_retries:
            result.retries += 1
            self.metrics.retried()
            queue.append(attempt.next_try(charged=True))
            self.emit("retry", shard=attempt.shard, attempt=attempt.attempt, reason=reason)
            return False
        result.failed.append({"shard": attempt.shard, "url": attempt.url, "attempts": attempt.attempt + 1,
                              "reason": reason, **extra})
        self.metrics.failed()
        self.emit("failed", shard=attempt.shard, reason=reason)
        return True

    def _keep_slot(self, slot: int) -> None:
        """After an actor death: keep the slot only if the cluster (a node may be gone) still
        has the resources for every live slot; else retire it so that nothing waits on an actor
        that can never be placed."""
        live = self.plan.num_actors - len(self.retired)
        have = self.ray.cluster_resources()
        need, key = (self.plan.num_gpus, "GPU") if self.plan.num_gpus else (self.plan.num_cpus, "CPU")
        if have.get(key, 0) + 1e-9 < live * need:
            self.retired.add(slot)
            self.emit("shrink", slot=slot, actors=live - 1)

    def _fail_all(self, attempt: Attempt, queue: deque, result: PoolRun, reason: str) -> None:
        """Every shard would fail the same way (the engine cannot be built, or no labeler can be
        placed any more), so stop now and record them all."""
        for a in [attempt, *queue]:
            result.failed.append({"shard": a.shard, "url": a.url, "attempts": a.attempt + 1, "reason": reason, "fatal": True})
            self.metrics.failed()
            self.emit("failed", shard=a.shard, reason=reason)
        queue.clear()

    def _timeouts(self, running: dict, queue: deque, result: PoolRun) -> None:
        """Actors whose first shard has run past ray.shard_timeout_s: the deadlines heap's due entries
        alone are looked at (an entry whose shard ended, or is no longer first, is stale)."""
        limit, now = self.cfg.ray.shard_timeout_s, self.clock()
        while self.deadlines and self.deadlines[0][0] < now:
            _, _, attempt = heapq.heappop(self.deadlines)
            held = self.held[attempt.slot]
            if held and held[0] is attempt and attempt.ref in running:
                self._actor_lost(attempt.slot, running, queue, result, f"timed out after {limit} s")

    def _report(self, bar: JobProgress, running: dict, result: PoolRun, final: bool = False) -> None:
        """The bar, at most every PROGRESS_EVERY_S (and once at the end): finished shards' images from
        this run's figures, running ones' from the progress counter, asked about the running attempts
        alone (it forgets the others), so that a tick costs the same at the millionth shard as at the first."""
        if not final and self.clock() - self._reported_at < PROGRESS_EVERY_S:
            return
        self._reported_at = self.clock()
        counts = self._running_counts(running) if running else {}
        images, errors = result.figures.images, result.figures.errors
        for attempt in running.values():
            ok, err = counts.get((attempt.shard, attempt.attempt), (0, 0))
            images, errors = images + ok + err, errors + err
            if ok + err:
                self.emit("progress", shard=attempt.shard, attempt=attempt.attempt, images=ok + err, actor=attempt.actor)
        bar.update(images, errors, len(result.done), result.retries)

    def _running_counts(self, running: dict) -> dict:
        from ray.exceptions import RayActorError

        try:
            return self.ray.get(self.progress.snapshot.remote([(a.shard, a.attempt) for a in running.values()]))
        except RayActorError:  # its node is gone: progress restarts from the finished shards
            self.progress = self.start_counter()
            return {}


def _task_error(exc) -> str:
    """The exception raised inside the actor, not Ray's wrapper text (an expected failure's message
    already says what it is)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, NerveError):
        return str(cause)
    return f"{type(cause).__name__}: {cause}" if cause is not None else first_line(exc)
