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
    # the paper table to compare with: a file name of configs/paper_tables/ without .yaml (nerve,
    # naclip-pamr, ...), or a YAML path; "" = the engine preset's own tables (configs/paper_tables/engines.yaml)
    paper: str = ""
    # dataset preset name -> engine keys for that dataset alone, over the engine of the command line
    # (e.g. {cityscapes: {clip: {image_size: 560}}}, NACLIP's Cityscapes protocol); they enter that
    # dataset's fingerprint only, so the other datasets' runs resume as before
    engine: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluateJobConfig(LabelJobConfig):
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
