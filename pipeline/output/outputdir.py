"""The one reader (and writer) of a labeling run's output directory.

Every command that touches OUT (label, score, verify, export, regress, the reports) goes through
`OutputDir`, so that there is one answer to "is this an output directory" (OUT/config.yaml exists)
and one definition of a done shard: its stats file (written last, atomically) is complete and not
marked partial. A partial shard's rows exist, but it is not done: nothing downstream may take it
for a finished shard.
"""
from __future__ import annotations

import json
from collections.abc import Iterator

import pyarrow.parquet as pq
import yaml

from nerve_core.errors import ConfigError, NerveError, NotFound
from pipeline.output.run_index import INDEX_DIR, RunIndex
from pipeline.output.run_record import RunRecord
from pipeline.output.shard_stats import ShardStats
from pipeline.output.writers import ShardResult, read_json, shard_paths, write_json, write_shard_outputs
from pipeline.storage import atomic_write, filesystem, join

CONFIG_FILE = "config.yaml"
FAILED_FILE = "failed_shards.json"
SUMMARY_FILE = "summary.json"
STATS_SUFFIX = ".stats.json"
PARQUET_SUFFIX = ".parquet"
_BATCH_ROWS = 256  # rows decoded at a time when a shard's Parquet file is streamed


class OutputConflict(NerveError):
    """The directory holds outputs of a different job; the message says how to proceed."""


class NotAnOutputDir(NotFound):
    """The directory has no config.yaml: no labeling run ever started there."""


class OutputDir:
    """OUT, a local path or an fsspec URL: config.yaml, shards/{shard}.*, summary.json, failures."""

    def __init__(self, url: str):
        if not url:
            raise ConfigError("output.dir is required")
        self.url = str(url)
        self.fs, self.root = filesystem(self.url)

    # ---- the job record ------------------------------------------------------------------------
    def _record_data(self) -> dict | None:
        """config.yaml as parsed YAML, or None for a fresh directory."""
        path = join(self.root, CONFIG_FILE)
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "r") as f:
            return yaml.safe_load(f)

    def record(self) -> RunRecord | None:
        """The typed job, class names and fingerprint that labeled this directory; None for a fresh one."""
        data = self._record_data()
        return None if data is None else RunRecord.from_data(data, join(self.url, CONFIG_FILE))

    def existing_record(self) -> RunRecord:
        record = self.record()
        if record is None:
            raise NotAnOutputDir(f"{self.url} has no {CONFIG_FILE}: not an output directory")
        return record

    def prepare(self, config: dict, fingerprint: dict, mode: str) -> None:
        """Refuse a directory labeled with another fingerprint unless mode=overwrite, which clears it."""
        if mode not in ("resume", "overwrite"):
            raise ConfigError(f"output.mode must be resume or overwrite, not {mode!r}")
        previous = self._record_data()  # only its digest: a record of another release may not fit the schema
        if previous is not None and mode == "resume":
            old = (previous.get("fingerprint") or {}).get("digest")
            if old != fingerprint["digest"]:
                raise OutputConflict(
                    f"{self.root} holds outputs of another configuration (fingerprint {old}, this job "
                    f"{fingerprint['digest']}); use another output.dir or output.mode=overwrite"
                )
        if mode == "overwrite":
            for name in ("shards", INDEX_DIR, SUMMARY_FILE, FAILED_FILE, CONFIG_FILE):
                path = join(self.root, name)
                if self.fs.exists(path):
                    self.fs.rm(path, recursive=True)
        self.fs.makedirs(join(self.root, "shards"), exist_ok=True)
        text = yaml.safe_dump({"config": config, "fingerprint": fingerprint}, sort_keys=False)
        atomic_write(self.fs, join(self.root, CONFIG_FILE), text.encode("utf-8"))

    # ---- shards --------------------------------------------------------------------------------
    def paths(self, shard: str) -> dict[str, str]:
        return shard_paths(self.root, shard)

    def _stems(self, suffix: str) -> list[str]:
        folder = join(self.root, "shards")
        # Actors on other processes and nodes write here: a listing cached by this process (object
        # stores' filesystems keep one) would hide what they wrote since.
        self.fs.invalidate_cache(folder)
        if not self.fs.exists(folder):
            return []
        names = (p.rsplit("/", 1)[-1] for p in self.fs.ls(folder, detail=False))
        return sorted(n[: -len(suffix)] for n in names if n.endswith(suffix))

    def markers(self) -> set[str]:
        """Shards with a stats file, complete or not: one listing, nothing read."""
        return set(self._stems(STATS_SUFFIX))

    def read_stats(self, shards: list[str]) -> dict[str, ShardStats]:
        """shard -> its stats, for those of `shards` whose stats file is complete (partial ones
        included): one batched read, which an object store answers in parallel."""
        paths = {self.paths(shard)["stats"]: shard for shard in shards}
        found = {}
        for path, data in (self.fs.cat(list(paths), on_error="return") if paths else {}).items():
            try:
                if isinstance(data, BaseException):
                    raise data
                found[paths[path]] = ShardStats.from_json(json.loads(data), paths[path])
            except (OSError, ValueError):  # vanished, or not whole: not a marker
                continue
        return found

    def stats(self) -> dict[str, ShardStats]:
        """shard -> its stats, for every shard whose stats file is complete (partial ones included).
        Reads every stats file: for what needs each shard's own figures (the tune cache's image
        index); the run's totals and its done shards are in the run index (`index`)."""
        return self.read_stats(sorted(self.markers()))

    def index(self, num_classes: int | None = None, writable: bool = False, reconcile: bool = True) -> RunIndex:
        """The run index (pipeline/output/run_index.py), loaded and brought in line with the stats
        files there; `writable`: the label job's, which writes what it finds missing; not
        `reconcile`: as its parts hold it, nothing else read."""
        index = RunIndex(self.fs, self.root, num_classes, self.read_stats, writable).load()
        if reconcile:
            index.reconcile(self.markers())
        return index

    def done_for(self, fingerprint: dict, mode: str) -> set[str]:
        """The shards a run with `fingerprint` will skip here, for its input checks: those in the
        run index whose stats file is still there, when it resumes (none for a fresh directory,
        another job's, or overwrite). The index's parts and one listing, no stats file read: the
        run itself brings the index in line with the stats files (a shard done after the index
        was last written is checked, and skipped by the run)."""
        previous = self._record_data()  # its digest only, as `prepare` reads it
        if mode != "resume" or previous is None or (previous.get("fingerprint") or {}).get("digest") != fingerprint["digest"]:
            return set()
        return self.index(reconcile=False).done() & self.markers()

    def clear_index(self) -> None:
        """Remove the run index (after the stats files were rewritten): the next `index` rebuilds it."""
        folder = join(self.root, INDEX_DIR)
        if self.fs.exists(folder):
            self.fs.rm(folder, recursive=True)

    def done_shards(self) -> set[str]:
        """Shards whose stats file is complete and not marked partial, from the run index: a few
        reads, not one per shard."""
        return self.index().done()

    def labeled_shards(self) -> list[str]:
        """Shards with a Parquet file, done or not."""
        return self._stems(PARQUET_SUFFIX)

    def columns(self, shard: str) -> list[str]:
        with self.fs.open(self.paths(shard)["parquet"], "rb") as f:
            return pq.ParquetFile(f).schema_arrow.names

    def num_rows(self, shard: str) -> int:
        with self.fs.open(self.paths(shard)["parquet"], "rb") as f:
            return pq.ParquetFile(f).metadata.num_rows

    def rows(self, shard: str, columns: list[str] | None = None) -> Iterator[dict]:
        """The shard's rows in order, streamed; `columns` that the file lacks are left out."""
        with self.fs.open(self.paths(shard)["parquet"], "rb") as f:
            parquet = pq.ParquetFile(f)
            if columns is not None:
                columns = [c for c in columns if c in parquet.schema_arrow.names]
            for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=columns):
                yield from batch.to_pylist()

    def coco_results(self, shard: str) -> list[dict] | None:
        """The shard's coco.json result list, or None when it has none."""
        path = self.paths(shard)["coco"]
        return read_json(self.fs, path) if self.fs.exists(path) else None

    def write_shard(self, result: ShardResult, compression: str = "zstd") -> None:
        """The shard's rows and COCO results; not done until `write_stats`."""
        write_shard_outputs(self.fs, self.root, result, compression)

    def write_stats(self, stats: ShardStats) -> None:
        """The shard's stats file, written last and atomically: its done-marker."""
        self.fs.makedirs(join(self.root, "shards"), exist_ok=True)
        write_json(self.fs, self.paths(stats.shard)["stats"], stats.to_json())

    # ---- run-level files -----------------------------------------------------------------------
    def write_summary(self, summary: dict) -> None:
        write_json(self.fs, join(self.root, SUMMARY_FILE), summary)

    def summary(self) -> dict:
        """summary.json as the last run wrote it."""
        return read_json(self.fs, join(self.root, SUMMARY_FILE))

    def record_failures(self, failures: list[dict]) -> None:
        """failed_shards.json lists this run's failed shards; absent when none failed."""
        path = join(self.root, FAILED_FILE)
        if failures:
            write_json(self.fs, path, {"failed": failures})
        elif self.fs.exists(path):
            self.fs.rm(path)

    def failures(self) -> list[dict]:
        path = join(self.root, FAILED_FILE)
        return read_json(self.fs, path)["failed"] if self.fs.exists(path) else []
