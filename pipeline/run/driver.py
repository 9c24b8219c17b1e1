"""The label job's driver: list shards, skip done ones, run the rest on a pool of Labeler actors.

A shard whose actor dies (or that raises, or that exceeds ray.shard_timeout_s, or whose tar breaks
part-way) goes back to the end of the queue until it has used ray.max_retries extra attempts; then
it is recorded in failed_shards.json. Dead actors are replaced while the cluster still has room
for them (a lost node shrinks the pool instead of leaving an actor that can never start). The
loop never blocks on one actor: it waits on all running attempts with a timeout, so a death
anywhere is seen at the next tick. The result is judged from the directory at the end: the job
is ok only when every input shard has a complete stats file.
"""
from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from configs import classes_path
from nerve_core.errors import NerveError
from nerve_core.vocab import Vocabulary
from pipeline.config import LabelJobConfig
from pipeline.job import ActorJob, label_job
from pipeline.output.fingerprint import job_fingerprint
from pipeline.output.outputdir import OutputDir
from pipeline.output.summary import write_summary
from pipeline.read.shardlist import expand_shards, manifest_counts, shard_id
from pipeline.run.actors import plan_actors, start_labeler, start_progress_counter
from pipeline.run.preflight import check_job, writing_output
from pipeline.run.progress import JobProgress

PROJECT_ROOT = Path(__file__).resolve().parents[2]


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

    @property
    def ok(self) -> bool:
        return not self.failed and not self.not_done


@dataclass
class _Attempt:
    url: str
    shard: str
    attempt: int
    slot: int = -1
    ref: object = None
    started: float = 0.0


class RayUnreachable(NerveError):
    """The Ray cluster named by ray.address could not be joined, or a local Ray could not start."""


@contextmanager
def ray_session(address: str, local_num_cpus: int | None, verbose: bool = False):
    """Use the Ray already connected (tests, notebooks); else join `address`, or start a local Ray.

    A local run asks for address="local": without it Ray would join whatever RAY_ADDRESS or the
    record of an earlier `ray start` names, even a cluster that died long ago. Ray's own log lines
    (start-up notices such as the token-authentication one, worker output) show only when verbose.
    """
    import ray

    if ray.is_initialized():
        yield ray
        return
    with ray_log_level(verbose):
        if address:
            try:
                ray.init(address=address, log_to_driver=verbose, configure_logging=verbose)
            except (ConnectionError, TimeoutError, ValueError) as exc:  # ValueError: a malformed address
                raise RayUnreachable(f"cannot connect to the Ray cluster at ray.address={address}: {_first_line(exc)} "
                                     "(leave ray.address empty to run on a local Ray)") from exc
        else:
            # Workers of a local Ray inherit this environment: make the source tree importable there.
            paths = [str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]
            os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
            try:
                ray.init(address="local", num_cpus=local_num_cpus, include_dashboard=False, log_to_driver=verbose,
                         configure_logging=verbose)
            except Exception as exc:  # Ray raises plain Exception when its processes do not come up in time
                raise RayUnreachable(f"cannot start a local Ray: {type(exc).__name__}: {_first_line(exc)}") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


@contextmanager
def ray_log_level(verbose: bool):
    """Ray's Python loggers at WARNING (verbose) or ERROR for the block."""
    logger = logging.getLogger("ray")
    level = logger.level
    logger.setLevel(logging.WARNING if verbose else logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def job_description(cfg) -> tuple[dict, Vocabulary, dict]:
    """(the config as plain data for OUT/config.yaml, vocabulary, fingerprint) of a typed job."""
    vocab = Vocabulary.from_file(classes_path(cfg.dataset.classes))
    return asdict(cfg), vocab, job_fingerprint(cfg, vocab.synonyms)


def run_label_job(cfg, on_event: Callable[..., None] | None = None) -> JobResult:
    """Label every shard of cfg.input.shards not yet done in cfg.output.dir; write the summary.

    `on_event(name, **data)` is told of "dispatch", "progress", "done", "retry" and "failed".
    `cfg`: the loaded config (omegaconf) or the typed job (pipeline.job.label_job).
    """
    cfg = label_job(cfg)
    out = OutputDir(cfg.output.dir)
    resolved, vocab, fingerprint = job_description(cfg)
    urls = expand_shards(cfg.input.shards)
    check_job(cfg.engine.device, urls)
    with writing_output(cfg.output.dir):
        out.prepare(resolved, fingerprint, cfg.output.mode)
    done_before = out.done_shards()
    todo = [u for u in urls if shard_id(u) not in done_before]
    result = JobResult(shards=len(urls), skipped=len(urls) - len(todo))
    start = time.perf_counter()
    stats = []
    if todo:
        with ray_session(cfg.ray.address, cfg.ray.local_num_cpus, cfg.ray.verbose) as ray:
            pool = ShardPool(ray, cfg, vocab, fingerprint, on_event or (lambda *a, **k: None))
            stats = pool.run(todo, result, manifest_counts(todo))
    out.record_failures(result.failed)
    done_now = out.done_shards()
    result.not_done = [shard_id(u) for u in urls if shard_id(u) not in done_now]
    seconds = time.perf_counter() - start
    images = sum(s["samples"] for s in stats)
    engine_seconds = sum(s["seconds"]["engine"] for s in stats)
    shard_seconds = sum(s["seconds"]["total"] for s in stats)  # per actor, engine builds excluded
    run = {
        "shards_labeled": len(stats), "shards_skipped": result.skipped, "shards_failed": len(result.failed),
        "retries": result.retries, "images": images, "seconds": round(seconds, 3),
        "images_per_second": images / seconds if images else None,  # Ray and model start included
        # Reading, decoding, engine, encoding and writing, once actors are up (summed over actors).
        "labeling_images_per_second": images / shard_seconds if shard_seconds else None,
        # The engine alone on the same images: its batches' wall time summed over actors.
        "engine_images_per_second": sum(s["ok"] for s in stats) / engine_seconds if engine_seconds else None,
    }
    result.summary = write_summary(out, vocab.names, fingerprint, run)
    return result


def actor_job(cfg: LabelJobConfig, vocab: Vocabulary, fingerprint: dict, device: str, torch_threads: int = 0) -> ActorJob:
    """The frozen job every Labeler actor of this run is built from."""
    return ActorJob(cfg, tuple(tuple(s) for s in vocab.synonyms), fingerprint["digest"], device, torch_threads)


def cpu_threads(cfg, plan, cluster: dict) -> int:
    """torch threads for each CPU actor (0 for GPU actors: their CPU work is light)."""
    if plan.device != "cpu":
        return 0
    return cfg.ray.torch_threads or max(1, int(cluster.get("CPU", 1) // plan.num_actors))


class ShardPool:
    """Labeler actors working through a queue of shards: retries, replacements, time-outs, progress.
    `nerve label` and the tune cache both run their shards on it."""

    def __init__(self, ray, cfg: LabelJobConfig, vocab: Vocabulary, fingerprint: dict, emit, task: str = "label_shard",
                 task_args: tuple = ()):
        """`task`: the Labeler method each shard attempt calls, as task(url, attempt, expected
        samples, *task_args) (label_shard; cache_shard for `nerve tune`)."""
        self.ray, self.cfg, self.emit = ray, cfg, emit
        self.task, self.task_args = task, task_args
        self.plan = plan_actors(cfg.ray.num_actors, cfg.ray.cpus_per_actor, cfg.engine.device, ray.cluster_resources())
        self.job = actor_job(cfg, vocab, fingerprint, self.plan.device, cpu_threads(cfg, self.plan, ray.cluster_resources()))
        self.actors: list = [None] * self.plan.num_actors
        self.retired: set[int] = set()  # slots given up because the cluster lost the room for them
        self.progress = start_progress_counter()
        self.counts: dict[str, int] = {}  # manifest sample counts: progress totals, short tars caught

    def actor(self, slot: int):
        if self.actors[slot] is None:
            self.actors[slot] = start_labeler(self.plan, self.job, self.progress)
        return self.actors[slot]

    def run(self, urls: list[str], result: JobResult, counts: dict[str, int]) -> list[dict]:
        ray, rc = self.ray, self.cfg.ray
        queue = deque(_Attempt(u, shard_id(u), 0) for u in urls)
        running: dict = {}  # ref -> _Attempt
        idle = list(range(self.plan.num_actors))
        stats: list[dict] = []
        self.counts = counts
        total = sum(counts.values()) if len(counts) == len(urls) else None
        bar = JobProgress(total, len(urls), enabled=self.cfg.progress)
        try:
            while queue or running:
                while queue and idle:
                    self._dispatch(queue.popleft(), idle.pop(0), running)
                ready, _ = ray.wait(list(running), num_returns=1, timeout=rc.poll_s)
                for ref in ready:
                    attempt = running.pop(ref)
                    if self._finish(ref, attempt, queue, result, stats):
                        idle.append(attempt.slot)
                if queue and not running and not idle:
                    self._fail_all(queue.popleft(), queue, result, "no room left in the Ray cluster for a labeler")
                self._timeouts(running, queue, result, idle)
                self._report(bar, running, stats, result)
        finally:
            bar.close()
            for actor in self.actors + [self.progress]:
                if actor is not None:
                    ray.kill(actor)
        return stats

    def _dispatch(self, attempt: _Attempt, slot: int, running: dict) -> None:
        attempt.slot, attempt.started = slot, time.monotonic()
        actor = self.actor(slot)
        task = getattr(actor, self.task)
        attempt.ref = task.remote(attempt.url, attempt.attempt, self.counts.get(attempt.shard), *self.task_args)
        running[attempt.ref] = attempt
        self.emit("dispatch", shard=attempt.shard, attempt=attempt.attempt, actor=actor)

    def _finish(self, ref, attempt: _Attempt, queue: deque, result: JobResult, stats: list) -> bool:
        """Handle a finished attempt; True when its actor is still usable."""
        from ray.exceptions import RayActorError, RayTaskError

        from pipeline.run.labeler import EngineBuildError

        try:
            shard_stats = self.ray.get(ref)
        except RayActorError as exc:
            self.ray.kill(self.actors[attempt.slot])  # dead or unreachable: never reuse it
            self.actors[attempt.slot] = None  # a fresh actor takes the slot on next dispatch
            self._retry_or_fail(attempt, queue, result, f"actor died: {_first_line(exc)}")
            return self._room_for_replacement(attempt.slot)
        except RayTaskError as exc:
            if isinstance(exc, EngineBuildError) or isinstance(getattr(exc, "cause", None), EngineBuildError):
                self._fail_all(attempt, queue, result, _task_error(exc))
                return False
            self._retry_or_fail(attempt, queue, result, _task_error(exc))
            return True
        if shard_stats.get("partial"):  # rows before the damage are written; try the tar again
            if self._retry_or_fail(attempt, queue, result, f"partial shard: {shard_stats['read_error']}",
                                   partial=True, samples=shard_stats["samples"]):
                stats.append(shard_stats)
            return True
        stats.append(shard_stats)
        result.done.append(attempt.shard)
        self.emit("done", shard=attempt.shard, attempt=attempt.attempt, stats=shard_stats)
        return True

    def _retry_or_fail(self, attempt: _Attempt, queue: deque, result: JobResult, reason: str, **extra) -> bool:
        """Requeue the shard while retries remain; else record it as failed and return True."""
        if attempt.attempt < self.cfg.ray.max_retries:
            result.retries += 1
            queue.append(_Attempt(attempt.url, attempt.shard, attempt.attempt + 1))
            self.emit("retry", shard=attempt.shard, attempt=attempt.attempt, reason=reason)
            return False
        result.failed.append({"shard": attempt.shard, "url": attempt.url, "attempts": attempt.attempt + 1,
                              "reason": reason, **extra})
        self.emit("failed", shard=attempt.shard, reason=reason)
        return True

    def _room_for_replacement(self, slot: int) -> bool:
        """After an actor death: keep the slot only if the cluster (a node may be gone) still
        has the resources for every live slot; else retire it so that nothing waits on an actor
        that can never be placed."""
        live = self.plan.num_actors - len(self.retired)
        have = self.ray.cluster_resources()
        need, key = (self.plan.num_gpus, "GPU") if self.plan.num_gpus else (self.plan.num_cpus, "CPU")
        if have.get(key, 0) + 1e-9 >= live * need:
            return True
        self.retired.add(slot)
        self.emit("shrink", slot=slot, actors=live - 1)
        return False

    def _fail_all(self, attempt: _Attempt, queue: deque, result: JobResult, reason: str) -> None:
        """Every shard would fail the same way (the engine cannot be built, or no labeler can be
        placed any more), so stop now and record them all."""
        for a in [attempt, *queue]:
            result.failed.append({"shard": a.shard, "url": a.url, "attempts": a.attempt + 1, "reason": reason, "fatal": True})
            self.emit("failed", shard=a.shard, reason=reason)
        queue.clear()

    def _timeouts(self, running: dict, queue: deque, result: JobResult, idle: list) -> None:
        limit = self.cfg.ray.shard_timeout_s
        if limit <= 0:
            return
        now = time.monotonic()
        for ref, attempt in list(running.items()):
            if now - attempt.started > limit:
                running.pop(ref)
                self.ray.kill(self.actors[attempt.slot])
                self.actors[attempt.slot] = None
                idle.append(attempt.slot)
                self._retry_or_fail(attempt, queue, result, f"timed out after {limit} s")

    def _report(self, bar: JobProgress, running: dict, stats: list, result: JobResult) -> None:
        from ray.exceptions import RayActorError

        try:
            counts = self.ray.get(self.progress.snapshot.remote())
        except RayActorError:  # its node is gone: progress restarts from the finished shards
            self.progress, counts = start_progress_counter(), {}
        images = sum(s["samples"] for s in stats)
        errors = sum(s["errors"] for s in stats)
        for attempt in running.values():
            ok, err = counts.get((attempt.shard, attempt.attempt), (0, 0))
            images, errors = images + ok + err, errors + err
            if ok + err:
                self.emit("progress", shard=attempt.shard, attempt=attempt.attempt, images=ok + err,
                          actor=self.actors[attempt.slot])
        bar.update(images, errors, len(result.done), result.retries)


def _task_error(exc) -> str:
    """The exception raised inside the actor, not Ray's wrapper text (an expected failure's message
    already says what it is)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, NerveError):
        return str(cause)
    return f"{type(cause).__name__}: {cause}" if cause is not None else _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
