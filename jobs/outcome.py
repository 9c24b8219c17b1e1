"""What the commands that label (label, demo, regress, evaluate) say about shards that failed.

A job whose every shard failed the same way (the engine cannot be built, e.g. a missing model; no
room for a labeler) is an expected failure with one cause: one line, exit 2. A job a signal stopped
(pipeline.run.stopping) says so in one line and exits RESUME_EXIT, which batch systems tell apart
from a failure. Other failed shards are listed with their reasons, so that a command never reports
only a consequence of them (an mIoU of nothing, "no ground truth was scored").
"""
from __future__ import annotations

import sys

from nerve_core.errors import NerveError

# sysexits.h's EX_TEMPFAIL, "try again later": what the sbatch script (configs/slurm/nerve.sbatch) requeues on.
RESUME_EXIT = 75


class JobStopped(NerveError):
    """The job stopped early: every remaining shard would have failed for the same reason."""


class JobInterrupted(Exception):
    """A stop signal ended the job before every shard was done; rerunning the command resumes it.
    Not a NerveError: it is no failure of the user's, and it has its own exit status."""


def stop_if_fatal(result, out_dir: str, more_follow: bool = False) -> None:
    """Raise JobInterrupted when a signal stopped the job before the end (or stopped it at all when
    `more_follow`: other jobs of the command would start after it), JobStopped when the driver gave
    up on it (its failures are marked fatal)."""
    if result.stopped and (more_follow or not result.ok):
        raise JobInterrupted(f"stopped by {result.stopped}: {len(result.not_done)} of {result.shards} shards are not "
                             f"done in {out_dir}; rerun the same command to resume")
    fatal = [f for f in result.failed if f.get("fatal")]
    if fatal:
        raise JobStopped(f"{fatal[0]['reason']} ({len(result.failed)} of {result.shards} shards not labeled; "
                         f"{out_dir}/failed_shards.json lists them)")


def report_failures(result, limit: int = 20) -> None:
    """One stderr line per failed shard: which, after how many attempts, and why."""
    for failure in result.failed[:limit]:
        print(f"failed shard {failure['shard']} after {failure['attempts']} attempts: {failure['reason']}",
              file=sys.stderr)
    if len(result.failed) > limit:
        print(f"... and {len(result.failed) - limit} more failed shards (failed_shards.json)", file=sys.stderr)
