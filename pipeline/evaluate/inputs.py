"""Every dataset's input shards checked before Ray starts and before any dataset is labeled, so that
a missing shard set of the last dataset does not surface hours into the first."""
from __future__ import annotations

from nerve_core.devices import check_device_name
from nerve_core.errors import NerveError, NotFound
from pipeline.output.outputdir import OutputDir
from pipeline.read.shardlist import expand_shards
from pipeline.run.driver import job_description
from pipeline.run.preflight import check_job


def check_dataset_inputs(jobs: dict) -> None:
    """`jobs`: dataset name -> its label job. One NotFound line naming every dataset whose shards are
    missing or unreadable, each with the label job's own reason (shards done by an earlier run of
    the same job are not asked about)."""
    for job in jobs.values():
        check_device_name(job.engine.device)
    problems = []
    for name, job in jobs.items():
        try:
            done = OutputDir(job.output.dir).done_for(job_description(job)[2], job.output.mode)
            check_job(job.engine.device, expand_shards(job.input.shards), done)
        except NerveError as exc:
            problems.append(f"dataset {name}: {exc}")
    if problems:
        raise NotFound("; ".join(problems))
