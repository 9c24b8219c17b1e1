"""Which random-weight models a benchmark runs: `tiny` (test sizes) or `full` (the real architectures)."""
from __future__ import annotations

MODEL_SETS = ("tiny", "full")


def model_overrides(kind: str, cache_dir: str, seed: int = 0) -> dict:
    """Engine-config overrides that load the `kind` models, written once under `cache_dir`."""
    if kind == "tiny":
        from nerve_core.models.tiny import cached_tiny_models

        return cached_tiny_models(cache_dir, seed=seed, progress=False)
    if kind == "full":
        from nerve_core.models.random_full import random_full_models

        return random_full_models(cache_dir, seed=seed)
    raise ValueError(f"unknown model set {kind!r}; expected one of {MODEL_SETS}")
