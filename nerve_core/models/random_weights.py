"""Which of an engine's models carry random weights, read from the model files themselves.

The test and timing models (tiny.py, random_full.py) mark what they write: a CLIP safetensors
checkpoint in its metadata, an SD diffusers directory with a marker file. A report warns from what
these files say, not from the `models=` switch: a run given the tiny models' paths directly is as
meaningless as one made with `models=tiny`.
"""
from __future__ import annotations

import json
from pathlib import Path

SD_MARKER = "nerve_random_weights.json"  # in a diffusers directory written with random weights
CLIP_METADATA_KEY = "nerve_random_weights"  # in the metadata of a CLIP safetensors checkpoint
CLIP_RANDOM = "random"  # engine.clip.pretrained that asks open_clip for random initialisation


def clip_metadata() -> dict[str, str]:
    """The safetensors metadata that marks a random-weight CLIP checkpoint."""
    return {CLIP_METADATA_KEY: "true"}


def mark_sd_directory(path, about: dict) -> None:
    """Write the marker of a random-weight SD directory (`about`: what was written, e.g. its seed)."""
    (Path(path) / SD_MARKER).write_text(json.dumps(about), encoding="utf-8")


def _random_clip(pretrained: str) -> bool:
    if pretrained == CLIP_RANDOM:
        return True
    path = Path(pretrained)
    if path.suffix != ".safetensors" or not path.is_file():
        return False  # a hub tag or another format: not one of ours
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return (f.metadata() or {}).get(CLIP_METADATA_KEY) == "true"


def random_weight_models(engine) -> list[str]:
    """The models of an engine config (nerve_core.config.EngineConfig) whose files say they hold
    random weights, as "clip: PATH" / "sd: PATH"; [] when all are real (or not ours to judge)."""
    found = []
    if _random_clip(engine.clip.pretrained):
        found.append(f"clip: {engine.clip.pretrained}")
    if (Path(engine.sd.model) / SD_MARKER).is_file():
        found.append(f"sd: {engine.sd.model}")
    return found
