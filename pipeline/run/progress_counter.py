"""The progress counter actor: per-(shard, attempt) image counts that Labeler actors push and the
driver polls for its progress bar, for the attempts that are running.

A module of its own, importing neither torch nor the shard reader: the actor's process imports
this module and nothing else of the labeler's (the labeler module would cost every job start a
torch import, about 2 CPU-seconds, on the driver's node).
"""
from __future__ import annotations


class ProgressCounter:
    """Per-(shard, attempt) image counts that actors push and the driver polls (a Ray actor)."""

    def __init__(self):
        self.counts: dict[tuple[str, int], list[int]] = {}

    def add(self, shard: str, attempt: int, ok: int, errors: int) -> None:
        count = self.counts.setdefault((shard, attempt), [0, 0])
        count[0] += ok
        count[1] += errors

    def snapshot(self, running: list[tuple[str, int]]) -> dict:
        """The counts of the `running` attempts; every other attempt is forgotten (it finished, and
        the driver counts it from its stats), so the counter never holds more than the running ones."""
        wanted = set(running)
        self.counts = {k: v for k, v in self.counts.items() if k in wanted}
        return {k: tuple(v) for k, v in self.counts.items()}
