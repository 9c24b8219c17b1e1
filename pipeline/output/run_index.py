"""The run index, OUT/index/part-NNNNNN.parquet: which shards are done, and their totals, in a few reads.

Deciding what is done and writing the summary used to read every shard's stats file, one request
each: hours on an object store at a million shards. The driver now appends each finished shard to
the index, a part of up to PART_SHARDS shards at a time: one row per shard (its name and counts)
and, in the part's metadata, the `RunTotals` of its shards, so that a summary reads one sum per part
instead of one confusion matrix per shard. The stats file stays the shard's done-marker, written by
the actor; the index only records what the markers say (docs/design.md, "The run index").

Only done shards (complete, not partial stats) are indexed. A done-marker the index does not know
(a driver killed before it wrote the part) is found by one listing and read alone; an indexed shard
whose marker is gone (removed by hand to relabel it) leaves the index: its part is rewritten from
the stats of the shards that remain.
"""
from __future__ import annotations

import io
import json
import time
from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.output.run_totals import RunTotals
from pipeline.output.shard_stats import ShardStats
from pipeline.storage import atomic_write, join

INDEX_DIR = "index"
PART_SHARDS = 4096  # shards per part: a part's confusion sum is one matrix whatever the count
FLUSH_EVERY_S = 300.0  # a part is written at least this often while shards finish: a killed driver's
                       # next run reads at most that long's done-markers one by one
_TOTALS_KEY = b"nerve.totals"
_SCHEMA = pa.schema([("shard", pa.string()), ("url", pa.string()), ("attempt", pa.int32()), ("samples", pa.int64()),
                     ("ok", pa.int64()), ("errors", pa.int64()), ("finished_at", pa.float64())])


def _part_name(number: int) -> str:
    return f"part-{number:06d}.parquet"


class RunIndex:
    """The index of one output directory: done shards, by part, and each part's totals.

    `read_stats(shards)` returns the stats of those shards that have a complete stats file (read in
    parallel: OutputDir.read_stats); the index calls it to rebuild a part that lost a shard. An
    index that is not `writable` (verify, score, the reports: readers never write OUT) makes the
    same changes in memory only.
    """

    def __init__(self, fs, root: str, num_classes: int | None, read_stats: Callable[[list[str]], dict[str, ShardStats]],
                 writable: bool = True):
        self.fs, self.folder, self.writable = fs, join(root, INDEX_DIR), writable
        self.num_classes, self.read_stats = num_classes, read_stats
        self.partial: dict[str, ShardStats] = {}  # shards whose stats say partial (from reconcile)
        self.part_of: dict[str, int] = {}  # done shard -> the part that holds it
        self.parts: dict[int, RunTotals] = {}
        # Shards done since the last part: their rows, and their totals folded as they arrive (a
        # shard's stats, with a confusion matrix of 200 KB at 171 classes, are not kept).
        self._pending: list[dict] = []
        self._pending_names: set[str] = set()
        self._pending_totals = RunTotals(num_classes)
        self._flushed_at = time.monotonic()

    # ---- reading -------------------------------------------------------------------------------
    def load(self) -> RunIndex:
        """Read every part (one listing, then the parts in one batched read)."""
        self.fs.invalidate_cache(self.folder)
        if not self.fs.exists(self.folder):
            return self
        paths = sorted(p for p in self.fs.ls(self.folder, detail=False) if p.rsplit("/", 1)[-1].startswith("part-")
                       and p.endswith(".parquet"))
        for path, data in self.fs.cat(paths, on_error="raise").items() if paths else ():
            number = int(path.rsplit("/", 1)[-1][len("part-"):-len(".parquet")])
            table = pq.read_table(io.BytesIO(data), columns=["shard"])  # the totals are in its metadata
            self.parts[number] = RunTotals.from_json(json.loads(table.schema.metadata[_TOTALS_KEY]))
            for shard in table.column("shard").to_pylist():
                self.part_of[shard] = number
        return self

    def reconcile(self, markers: set[str]) -> None:
        """Bring the index in line with the shards that have a stats file (`markers`, from one
        listing): indexed shards without one leave it; the markers it lacks are read, in parallel:
        done ones are indexed, partial ones kept in `partial` (never indexed)."""
        self.drop(set(self.part_of) - markers)
        unindexed = self.read_stats(sorted(markers - set(self.part_of) - self._pending_names))
        self.partial = {shard: s for shard, s in unindexed.items() if s.partial}
        for stats in unindexed.values():
            if not stats.partial:
                self.add(stats)
        if self.writable:
            self.flush()

    def done(self) -> set[str]:
        """The done shards: indexed, or pending a part."""
        return set(self.part_of) | self._pending_names

    def totals(self, with_partial: bool = True) -> RunTotals:
        """The totals of every indexed shard, pending ones included, and of the partial shards
        found by `reconcile` (their rows are counted, as summary.json always did)."""
        totals = RunTotals(self.num_classes)
        for part in [*self.parts.values(), self._pending_totals]:
            totals.merge(part)
        for stats in self.partial.values() if with_partial else ():
            totals.add(stats)
        return totals

    # ---- writing -------------------------------------------------------------------------------
    def add(self, stats: ShardStats) -> None:
        """Record a done shard; a part is written every PART_SHARDS shards or FLUSH_EVERY_S seconds."""
        if stats.partial:
            raise ValueError(f"shard {stats.shard} is partial: only done shards are indexed")
        if stats.shard in self.part_of:
            self.drop({stats.shard})  # relabeled: its old figures leave the index
        self._pending.append(_row(stats))
        self._pending_names.add(stats.shard)
        self._pending_totals.add(stats)
        self.partial.pop(stats.shard, None)
        if self.writable and (len(self._pending) >= PART_SHARDS or time.monotonic() - self._flushed_at >= FLUSH_EVERY_S):
            self.flush()

    def flush(self) -> None:
        """Write the pending shards as a new part (atomically: a reader sees all of it or none)."""
        self._flushed_at = time.monotonic()
        if not self._pending:
            return
        number = max(self.parts, default=-1) + 1
        self._write(number, self._pending, self._pending_totals)
        for row in self._pending:
            self.part_of[row["shard"]] = number
        self._pending, self._pending_names, self._pending_totals = [], set(), RunTotals(self.num_classes)

    def drop(self, shards: set[str]) -> None:
        """Take `shards` out of the index: each part that held one is rewritten from the stats of
        its other shards (or removed when none is left)."""
        touched = {self.part_of[s] for s in shards if s in self.part_of}
        held_by: dict[int, list[str]] = {number: [] for number in touched}
        for shard, number in self.part_of.items() if touched else ():  # one walk over the index, whatever the parts
            if number in held_by:
                held_by[number].append(shard)
        for number, held in sorted(held_by.items()):
            keep = [s for s in held if s not in shards]
            stats = self.read_stats(keep)
            lost = [s for s in keep if s not in stats or stats[s].partial]
            kept = [stats[s] for s in keep if s not in lost]
            for shard in [s for s in held if s in shards or s in lost]:
                del self.part_of[shard]
            if kept:
                self._write(number, [_row(s) for s in kept], _fold(kept, self.num_classes))
            else:
                if self.writable:
                    self.fs.rm(join(self.folder, _part_name(number)))
                del self.parts[number]
        if shards & self._pending_names:  # pending totals cannot be taken apart: fold the others again
            self._pending = [row for row in self._pending if row["shard"] not in shards]
            self._pending_names -= shards
            stats = self.read_stats([row["shard"] for row in self._pending])
            self._pending_totals = _fold(stats.values(), self.num_classes)

    def _write(self, number: int, rows: list[dict], totals: RunTotals) -> None:
        table = pa.Table.from_pylist(rows, schema=_SCHEMA.with_metadata({_TOTALS_KEY: json.dumps(totals.to_json())}))
        if self.writable:
            buffer = io.BytesIO()
            pq.write_table(table, buffer, compression="zstd")
            self.fs.makedirs(self.folder, exist_ok=True)
            atomic_write(self.fs, join(self.folder, _part_name(number)), buffer.getvalue())
        self.parts[number] = totals


def _row(stats: ShardStats) -> dict:
    """A done shard's row in its part."""
    return {"shard": stats.shard, "url": stats.url, "attempt": stats.attempt, "samples": stats.samples, "ok": stats.ok,
            "errors": stats.errors, "finished_at": stats.finished_at}


def _fold(stats, num_classes: int | None) -> RunTotals:
    totals = RunTotals(num_classes)
    for s in stats:
        totals.add(s)
    return totals
