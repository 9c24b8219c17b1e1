"""Full-size random-weight models: the real SD2.1-base and CLIP ViT-L/14-336 architectures, for timing.

A random-weight model of the real architecture costs exactly what the real one costs to run, and
loading it from a diffusers directory with `from_pretrained` exercises the same code as real
weights. Writing one takes minutes and ~5 GB (float32, like the hub's default files), so the
directory is reused when it already holds the same seed.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from nerve_core.models.clip_loader import RANDOM_WEIGHTS
from nerve_core.models.random_weights import SD_MARKER, mark_sd_directory
from nerve_core.models.tiny_sd import random_sd_models, save_sd_directory

DEFAULT_CACHE = Path("~/.cache/nerve").expanduser()
MARKER = SD_MARKER  # written last: says the weights are random, and its presence that the directory is complete
SD21_BASE_IMAGE_SIZE = 512  # latent 64 x 64: the 4096-node grid of the captured layers
# Random weights for whichever CLIP architecture the engine config names (ViT-L-14-336 by default,
# ViT-B-16 in the NACLIP and DSLO presets): only the weights change, never the architecture.
CLIP_RANDOM = {"pretrained": RANDOM_WEIGHTS}


def write_random_sd21_base(path, seed: int = 0) -> dict:
    """Write SD2.1-base (UNet, VAE, OpenCLIP-H text encoder, tokenizer, scheduler) with random weights.

    Returns the SDConfig overrides that load it. An existing complete directory written with the
    same seed is reused as it is; anything else there is replaced.
    """
    path = Path(path).expanduser()
    marker = {"architecture": "stable-diffusion-2-1-base", "seed": int(seed)}
    if _read_marker(path) != marker:
        partial = path.with_name(path.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        save_sd_directory(random_sd_models(seed=seed, full_size=True), partial)
        mark_sd_directory(partial, marker)
        shutil.rmtree(path, ignore_errors=True)
        partial.rename(path)
    return {"model": str(path), "image_size": SD21_BASE_IMAGE_SIZE}


def _read_marker(path: Path) -> dict | None:
    try:
        return json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return None


def random_full_models(cache_dir=DEFAULT_CACHE, seed: int = 0) -> dict:
    """Engine-config overrides ({"clip": ..., "sd": ...}) for both full-size random-weight models."""
    sd = write_random_sd21_base(Path(cache_dir).expanduser() / "random-sd21-base", seed=seed)
    return {"clip": dict(CLIP_RANDOM), "sd": sd}
