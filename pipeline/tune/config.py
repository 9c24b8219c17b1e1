"""The tune job's typed config: the label job's keys plus a `tune` section."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.config import LabelJobConfig

SEARCHES = ("grid", "random", "optuna")
CACHE_DTYPES = ("engine", "float16", "float32", "bfloat16")


@dataclass(frozen=True)
class TuneConfig:
    # engine.refine.*, engine.background.* or engine.upsample.* key -> list of values to try.
    space: dict[str, Any] = field(default_factory=dict)
    search: str = "grid"  # grid (every combination) | random | optuna (model-based, through Ray Tune)
    trials: int = 0  # random / optuna: how many settings to try (0 = as many as the grid has)
    # Share of the cached images held out as the check part (0 = none); trials are ranked on the rest.
    check_fraction: float = 0.2
    seed: int = 0  # the split and the random / optuna sampling
    cpus_per_trial: float = 1.0  # CPU trials: Ray CPUs (and torch threads) per trial
    gpus_per_trial: float = 1.0  # when the cluster has GPUs and engine.device is not cpu
    # SD q/k storage: engine = the engine's own dtype (fp16 on GPU, fp32 on CPU), so that a trial's
    # mIoU is exactly what `nerve label` scores; float16 halves a CPU engine's cache at some exactness.
    cache_dtype: str = "engine"


@dataclass(frozen=True)
class TuneJobConfig(LabelJobConfig):
    tune: TuneConfig = field(default_factory=TuneConfig)
