"""The output directory as a whole: config.yaml + fingerprint, done shards, overwrite, failures."""
from __future__ import annotations

import yaml

from nerve_core.errors import ConfigError, NerveError
from pipeline.storage import atomic_write, join
from pipeline.writers import read_json, write_json

CONFIG_FILE = "config.yaml"
FAILED_FILE = "failed_shards.json"
SUMMARY_FILE = "summary.json"
STATS_SUFFIX = ".stats.json"


class OutputConflict(NerveError):
    """The directory holds outputs of a different job; the message says how to proceed."""


def read_job_record(fs, root: str) -> dict | None:
    """{"config": ..., "fingerprint": ...} from OUT/config.yaml, or None for a fresh directory."""
    path = join(root, CONFIG_FILE)
    if not fs.exists(path):
        return None
    with fs.open(path, "r") as f:
        return yaml.safe_load(f)


def prepare_output(fs, root: str, config: dict, fingerprint: dict, mode: str) -> None:
    """Refuse a directory labeled with another fingerprint unless mode=overwrite, which clears it."""
    if mode not in ("resume", "overwrite"):
        raise ConfigError(f"output.mode must be resume or overwrite, not {mode!r}")
    previous = read_job_record(fs, root)
    if previous is not None and mode == "resume":
        old = (previous.get("fingerprint") or {}).get("digest")
        if old != fingerprint["digest"]:
            raise OutputConflict(
                f"{root} holds outputs of another configuration (fingerprint {old}, this job "
                f"{fingerprint['digest']}); use another output.dir or output.mode=overwrite"
            )
    if mode == "overwrite":
        for name in ("shards", SUMMARY_FILE, FAILED_FILE, CONFIG_FILE):
            path = join(root, name)
            if fs.exists(path):
                fs.rm(path, recursive=True)
    fs.makedirs(join(root, "shards"), exist_ok=True)
    text = yaml.safe_dump({"config": config, "fingerprint": fingerprint}, sort_keys=False)
    atomic_write(fs, join(root, CONFIG_FILE), text.encode("utf-8"))


def stats_shards(fs, root: str) -> set[str]:
    """Shard ids with a stats file (done, or partial: the tar broke part-way)."""
    folder = join(root, "shards")
    if not fs.exists(folder):
        return set()
    names = (p.rsplit("/", 1)[-1] for p in fs.ls(folder, detail=False))
    return {n[: -len(STATS_SUFFIX)] for n in names if n.endswith(STATS_SUFFIX)}


def all_stats(fs, root: str) -> list[dict]:
    """Stats of every shard with a stats file, partial ones included (their rows exist)."""
    return [read_json(fs, join(root, "shards", f"{s}{STATS_SUFFIX}")) for s in sorted(stats_shards(fs, root))]


def done_shards(fs, root: str) -> set[str]:
    """Shard ids whose stats file (the done-marker) exists and is not marked partial."""
    return {s["shard"] for s in all_stats(fs, root) if not s.get("partial")}


def record_failures(fs, root: str, failures: list[dict]) -> None:
    """failed_shards.json lists this run's failed shards; absent when none failed."""
    path = join(root, FAILED_FILE)
    if failures:
        write_json(fs, path, {"failed": failures})
    elif fs.exists(path):
        fs.rm(path)
