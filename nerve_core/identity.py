"""What decides an engine's output, as one definition shared by the engine and the label job.

Both fingerprints (the engine's own, stamped in each shard's stats, and the job's, which guards an
output directory against mixing runs) are built from `engine_identity`, so a setting is either part
of both or of neither. Throughput settings change speed, never the labels, and are part of neither:
a rerun with a larger batch or with torch.compile resumes the same directory.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, is_dataclass
from importlib.metadata import PackageNotFoundError, version

# Dotted engine-config paths that change speed only.
THROUGHPUT_FIELDS = ("batch_size", "compile", "refine.batching")


def code_version() -> str:
    """The installed package version; "source" when the tree runs uninstalled."""
    try:
        return version("nerve")
    except PackageNotFoundError:
        return "source"


def engine_identity(cfg) -> dict:
    """The engine config (a dataclass or a plain dict) as a dict, throughput fields left out."""
    config = asdict(cfg) if is_dataclass(cfg) else json.loads(json.dumps(cfg))
    for path in THROUGHPUT_FIELDS:
        *parents, name = path.split(".")
        node = config
        for parent in parents:
            node = node.get(parent, {})
        node.pop(name, None)
    return config


def digest(parts: dict) -> str:
    """16 hex characters of the SHA-256 of `parts` as canonical JSON."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()[:16]
