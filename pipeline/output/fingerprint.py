"""The job fingerprint: everything that decides the content of an output directory.

Computed from the typed job on the driver (no model is loaded there): the engine's identity (its
config without throughput fields, the same part the engine's own fingerprint covers), the
vocabulary itself (not just its file name), how GT and image labels are read, whether confidence
maps are stored, and the code version. Throughput knobs (batch size, actors, threads) and the input
shard list are left out, so that a rerun with more actors or more shards resumes the same directory.
"""
from __future__ import annotations

from nerve_core.identity import code_version, digest, engine_identity


def job_fingerprint(cfg, class_synonyms: list[list[str]]) -> dict:
    """{"digest": 16 hex chars, ...the parts it covers} for a typed LabelJobConfig."""
    parts = {
        "engine": engine_identity(cfg.engine),
        "classes": [list(s) for s in class_synonyms],
        "dataset": {"ignore_index": int(cfg.dataset.ignore_index), "labels_from_gt": bool(cfg.dataset.labels_from_gt),
                    "reduce_zero_label": bool(cfg.dataset.reduce_zero_label)},
        "output": {"confidence": bool(cfg.output.confidence)},
        "code": code_version(),
    }
    return {"digest": digest(parts), **parts}
