"""Every dataset's input shards checked before Ray starts and before any dataset is labeled, so that
a missing shard set of the last dataset does not surface hours into the first."""
from __future__ import annotations

from nerve_core.devices import check_device_name
from nerve_core.errors import NerveError, NotFound
from pipeline.read.shardlist import expand_shards
from pipeline.run.preflight import check_job


def check_dataset_inputs(jobs: dict) -> None:
    """`jobs`: dataset name -> its label job. One NotFound line naming every dataset whose shards are
    missing or unreadable, each with the label job's own reason."""
    for job in jobs.values():
        check_device_name(job.engine.device)
    problems = []
    for name, job in jobs.items():
        try:
            check_job(job.engine.device, expand_shards(job.input.shards))
        except NerveError as exc:
            problems.append(f"dataset {name}: {exc}")
    if problems:
        raise NotFound("; ".join(problems))
