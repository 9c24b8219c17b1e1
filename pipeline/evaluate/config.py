"""The `nerve evaluate` config: a label-job config plus the `evaluate` section."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.config import LabelJobConfig


@dataclass(frozen=True)
class EvaluateConfig:
    # dataset preset name (configs/datasets/) -> its input shards, in any form input.shards takes
    # (a path, a brace pattern, a directory, a list); each is labeled into output.dir/{dataset}/
    datasets: dict[str, Any] = field(default_factory=dict)
    # the paper table to compare with (configs/papers/NAME.yaml, or a YAML path); "" = the engine
    # preset's own tables (configs/papers/engines.yaml)
    paper: str = ""


@dataclass(frozen=True)
class EvaluateJobConfig(LabelJobConfig):
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
