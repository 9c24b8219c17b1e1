"""What the commands that label (label, demo, regress) say about shards that failed.

A job whose every shard failed the same way (the engine cannot be built, e.g. a missing model; no
room for a labeler) is an expected failure with one cause: one line, exit 2. Other failed shards
are listed with their reasons, so that a command never reports only a consequence of them
(an mIoU of nothing, "no ground truth was scored").
"""
from __future__ import annotations

import sys

from nerve_core.errors import NerveError


class JobStopped(NerveError):
    """The job stopped early: every remaining shard would have failed for the same reason."""


def stop_if_fatal(result, out_dir: str) -> None:
    """Raise JobStopped when the driver gave up on the job (its failures are marked fatal)."""
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
