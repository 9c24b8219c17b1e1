"""The job fingerprint: everything that decides the content of an output directory.

Computed from the resolved config on the driver (no model is loaded there): the engine config, the
vocabulary itself (not just its file name), how GT and image labels are read, whether confidence
maps are stored, and the code version. Throughput knobs (batch size, actors, threads) and the input
shard list are left out, so that a rerun with more actors or more shards resumes the same directory.
"""
from __future__ import annotations

import hashlib
import json

from omegaconf import OmegaConf

from nerve_core.version import code_version

# Engine fields that change speed, never the labels.
_THROUGHPUT_FIELDS = ("batch_size",)


def job_fingerprint(cfg, class_synonyms: list[list[str]]) -> dict:
    """{"digest": 16 hex chars, ...the parts it covers} for a LabelJobConfig."""
    engine = OmegaConf.to_container(cfg.engine, resolve=True)
    for name in _THROUGHPUT_FIELDS:
        engine.pop(name, None)
    parts = {
        "engine": engine,
        "classes": [list(s) for s in class_synonyms],
        "dataset": {"ignore_index": int(cfg.dataset.ignore_index), "labels_from_gt": bool(cfg.dataset.labels_from_gt),
                    "reduce_zero_label": bool(cfg.dataset.reduce_zero_label)},
        "output": {"confidence": bool(cfg.output.confidence)},
        "code": code_version(),
    }
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    return {"digest": digest, **parts}
