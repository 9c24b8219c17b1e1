"""`models=tiny|real` for every command that labels: which weights the engine loads.

`real` leaves the engine config as it is (the preset's weights, or the paths given). `tiny` writes
the random-weight test models once under $NERVE_CACHE (default ~/.cache/nerve), reuses them after
that, and points engine.clip.* and engine.sd.* at them: any command runs offline in seconds, with
meaningless masks.
"""
from __future__ import annotations

from omegaconf import OmegaConf

from jobs.config import ParsedArgs, cache_dir, load_config, no_positionals
from nerve_core.errors import ConfigError

MODEL_CHOICES = ("real", "tiny")


def apply_models(cfg):
    """`cfg` (a loaded config with `models`, `engine` and `progress`) with the chosen models' engine
    overrides merged in, as a new config; explicit engine.clip.* / engine.sd.* paths give way to tiny ones."""
    if cfg.models not in MODEL_CHOICES:
        raise ConfigError(f"models must be one of {', '.join(MODEL_CHOICES)}, not {cfg.models!r}")
    if cfg.models == "real":
        return cfg
    from nerve_core.models.tiny import cached_tiny_models

    overrides = cached_tiny_models(cache_dir(), progress=bool(cfg.get("progress", True)))
    return OmegaConf.merge(cfg, {"engine": overrides})


def load_labeling_config(schema, args: ParsedArgs):
    """The config of a command that labels (label, regress, tune): key=value arguments only, loaded
    over `schema`, with the chosen models applied."""
    no_positionals(args)
    return apply_models(load_config(schema, args.overrides, args.config_file))
