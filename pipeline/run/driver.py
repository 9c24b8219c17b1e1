"""The label job's driver: list shards, skip done ones, run the rest on a pool of Labeler actors.

The pool (pipeline.run.pool, run by pipeline.run.pending) retries what fails; shards that use up their retries are recorded in
failed_shards.json. The result is judged from the directory at the end: the job is ok only when
every input shard has a complete stats file.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from functools import partial

from configs import classes_path
from nerve_core.errors import NerveError, first_line
from nerve_core.vocab import Vocabulary
from pipeline.job import label_job
from pipeline.output.fingerprint import job_fingerprint
from pipeline.output.outputdir import OutputDir
from pipeline.output.summary import write_summary
from pipeline.read.shardlist import expand_shards
from pipeline.run.pending import JobResult, run_pending
from pipeline.run.pool import ShardPool
from pipeline.run.preflight import check_job, check_ray_settings, writing_output
from pipeline.run.stopping import StopRequest
from pipeline.source_path import source_pythonpath


class RayUnreachable(NerveError):
    """The Ray cluster named by ray.address could not be joined, or a local Ray could not start."""


@contextmanager
def ray_session(address: str, local_num_cpus: int | None, verbose: bool = False, metrics_export_port: int = 0):
    """Use the Ray already connected (tests, notebooks); else join `address`, or start a local Ray.

    A local run asks for address="local": without it Ray would join whatever RAY_ADDRESS or the
    record of an earlier `ray start` names, even a cluster that died long ago. Ray's own log lines
    (start-up notices such as the token-authentication one, worker output) show only when verbose.
    A local Ray's metrics agent serves Prometheus on `metrics_export_port` (0: a port Ray picks);
    a joined cluster keeps its own.
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
                raise RayUnreachable(f"cannot connect to the Ray cluster at ray.address={address}: {first_line(exc)} "
                                     "(leave ray.address empty to run on a local Ray)") from exc
        else:
            # Workers of a local Ray inherit this environment: make the source tree importable there.
            os.environ["PYTHONPATH"] = source_pythonpath()
            try:
                ray.init(address="local", num_cpus=local_num_cpus, include_dashboard=False, log_to_driver=verbose,
                         configure_logging=verbose, _metrics_export_port=metrics_export_port or None)
            except Exception as exc:  # Ray raises plain Exception when its processes do not come up in time
                raise RayUnreachable(f"cannot start a local Ray: {type(exc).__name__}: {first_line(exc)}") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


class SharedRaySession:
    """One Ray for several label jobs run one after another (`nerve evaluate`): pass it as their
    `session`. The first job with shards to label starts (or joins) Ray as `ray_session` does; the
    later ones use it; it shuts down when the `with` block ends. A Ray already connected stays up."""

    def __init__(self):
        self._stack = ExitStack()

    @contextmanager
    def __call__(self, address: str, local_num_cpus: int | None, verbose: bool = False, metrics_export_port: int = 0):
        yield self._stack.enter_context(ray_session(address, local_num_cpus, verbose, metrics_export_port))

    def __enter__(self) -> SharedRaySession:
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()


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


def run_label_job(cfg, on_event: Callable[..., None] | None = None, session=ray_session, pool=ShardPool) -> JobResult:
    """Label every shard of cfg.input.shards not yet done in cfg.output.dir; write the summary.

    `on_event(name, **data)` is told of the pool's events (pipeline.run.pool.ShardPool).
    `cfg`: the loaded config (omegaconf) or the typed job (pipeline.job.label_job).
    `session`: how Ray is started when there is work (`SharedRaySession` keeps one across jobs).
    `pool`: what makes the shard pool (run_pending's; the driver bench times the real one).
    """
    cfg = label_job(cfg)
    out = OutputDir(cfg.output.dir)
    resolved, vocab, fingerprint = job_description(cfg)
    urls = expand_shards(cfg.input.shards)
    check_ray_settings(cfg.ray)
    check_job(cfg.engine.device, urls, out.done_for(fingerprint, cfg.output.mode))
    with writing_output(cfg.output.dir):
        out.prepare(resolved, fingerprint, cfg.output.mode)
    start = time.perf_counter()
    connect = partial(session, cfg.ray.address, cfg.ray.local_num_cpus, cfg.ray.verbose, cfg.ray.metrics_export_port)
    stop = StopRequest(cfg.ray.stop_grace_s)
    result, figures, index = run_pending(out, urls, connect, cfg, vocab, fingerprint, on_event or (lambda *a, **k: None),
                                         stop=stop, pool=pool)
    run = figures.last_run(time.perf_counter() - start, result.skipped, len(result.failed), result.retries)
    result.summary = write_summary(out, vocab.names, fingerprint, run, index)
    return result
