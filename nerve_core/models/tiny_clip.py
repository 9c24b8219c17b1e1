"""A tiny random-weight open_clip ViT in open_clip's own on-disk formats.

A model-config JSON (open_clip's schema, registered by `load_clip` through `add_model_config`)
and a safetensors checkpoint that open_clip's `create_model` loads like any real checkpoint.
The text tower keeps the real context length and BPE vocabulary so that open_clip's default
tokenizer is used unchanged.
"""
from __future__ import annotations

import json
from pathlib import Path

import open_clip
import torch
from safetensors.torch import save_file

from nerve_core.models.random_weights import clip_metadata

TINY_CLIP_NAME = "nerve-tiny-clip"
TINY_IMAGE_SIZE = 64
TINY_PATCH_SIZE = 8

TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {
        "image_size": TINY_IMAGE_SIZE,
        "layers": 2,
        "width": 64,
        "head_width": 32,  # open_clip derives heads = width // head_width = 2
        "patch_size": TINY_PATCH_SIZE,
    },
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def write_tiny_clip(path, seed: int = 0) -> dict:
    """Write config + checkpoint under `path`; return the ClipConfig overrides that load them.

    The weights are a function of `seed` only (the global RNG state is left untouched).
    """
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    config_file = root / f"{TINY_CLIP_NAME}.json"
    config_file.write_text(json.dumps(TINY_CLIP_CONFIG, indent=2), encoding="utf-8")

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(**TINY_CLIP_CONFIG)
    checkpoint = root / f"{TINY_CLIP_NAME}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(checkpoint), metadata=clip_metadata())

    # Sliding windows (resize=short_side): stride half the window as in NACLIP's 224/112; a
    # 6-patch window is smaller than the 64-pixel short side, so windows really slide.
    return {
        "model": TINY_CLIP_NAME,
        "config_file": str(config_file),
        "pretrained": str(checkpoint),
        "image_size": TINY_IMAGE_SIZE,
        "window": 48,
        "stride": 24,
    }
