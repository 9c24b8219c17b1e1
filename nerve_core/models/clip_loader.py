"""Load a CLIP model through open_clip, and nothing else.

Real weights and the tiny test model go through the same `open_clip.create_model` call, so the
tests exercise the production loading path. Checkpoints are read by open_clip's own
`load_state_dict`, which uses safetensors for `.safetensors` files and
`torch.load(weights_only=True)` otherwise; we pass `weights_only=True` explicitly so a pickle
checkpoint can never run code. (open_clip's older `load_openai_model` does an unrestricted
`torch.load`; it is never used here.)
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import open_clip
import torch

from nerve_core.config import ClipConfig
from nerve_core.models.errors import ModelNotFoundError
from nerve_core.models.random_weights import CLIP_RANDOM

log = logging.getLogger(__name__)

HF_HUB_PREFIX = "hf-hub:"
# `pretrained` value for a randomly initialised model: the real architecture at the real cost,
# for timing without weights. Never the default.
RANDOM_WEIGHTS = CLIP_RANDOM


def load_clip(cfg: ClipConfig, device, dtype: torch.dtype):
    """Return (model, tokenizer): eval mode, gradients off, on `device` in `dtype`.

    Raises ModelNotFoundError naming what was looked for when the model cannot be found or read.
    """
    looked_for = _describe(cfg)
    try:
        kwargs = create_model_arguments(cfg)
        model = open_clip.create_model(**kwargs)
        tokenizer = open_clip.get_tokenizer(cfg.model)
    except ModelNotFoundError:
        raise
    except Exception as err:  # open_clip reports missing/bad models with many exception types
        raise ModelNotFoundError("CLIP", looked_for, err) from err
    model.eval().requires_grad_(False)
    model.to(device=torch.device(device), dtype=dtype)
    return model, tokenizer


def create_model_arguments(cfg: ClipConfig) -> dict:
    """The `open_clip.create_model` keyword arguments for `cfg` (registers `config_file` first)."""
    if cfg.config_file:
        register_model_config(cfg.config_file, cfg.model)
    kwargs = dict(model_name=cfg.model, device="cpu", precision="fp32", weights_only=True)
    if cfg.model.startswith(HF_HUB_PREFIX):
        return kwargs  # the hub repository holds config and weights; `pretrained` does not apply
    if not cfg.pretrained:
        raise ModelNotFoundError(
            "CLIP", _describe(cfg) + f" (engine.clip.pretrained is empty; use {RANDOM_WEIGHTS!r} "
            "for random weights)"
        )
    if cfg.pretrained == RANDOM_WEIGHTS:
        log.warning("CLIP %s: random weights (pretrained=%r)", cfg.model, RANDOM_WEIGHTS)
        return kwargs
    tag_cfg = open_clip.get_pretrained_cfg(cfg.model, cfg.pretrained)
    if not tag_cfg and not Path(cfg.pretrained).is_file():
        raise ModelNotFoundError(
            "CLIP", _describe(cfg) + " (not a pretrained tag of this model, and no such checkpoint "
            f"file; tags: {open_clip.list_pretrained_tags_by_model(cfg.model)})"
        )
    # open_clip 3.x only warns when a tag was trained with QuickGELU and the named config uses
    # GELU (e.g. ViT-L-14-336 + openai): the weights would load but compute other features.
    if tag_cfg.get("quick_gelu", False):
        kwargs["force_quick_gelu"] = True
    kwargs["pretrained"] = cfg.pretrained
    return kwargs


def register_model_config(config_file: str, model_name: str) -> None:
    """Make open_clip know the architecture in `config_file` under `model_name` (its file stem)."""
    path = Path(config_file)
    if not path.is_file():
        raise ModelNotFoundError("CLIP", f"model config file {config_file}")
    if path.stem != model_name:
        raise ModelNotFoundError(
            "CLIP", f"model {model_name!r} in config file {config_file} (open_clip names a config "
            f"by its file stem, so this file defines {path.stem!r}; set engine.clip.model to it)"
        )
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelNotFoundError("CLIP", f"model config file {config_file}", err) from err
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in content]
    if missing:
        raise ModelNotFoundError(
            "CLIP", f"model config file {config_file} (not an open_clip config: lacks {missing})"
        )
    if open_clip.get_model_config(model_name) != content:
        open_clip.add_model_config(path)


def preprocess_mean_std(model) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The per-channel mean and std the model was trained with (open_clip's preprocess config)."""
    pp = open_clip.get_model_preprocess_cfg(model)
    return tuple(pp["mean"]), tuple(pp["std"])


def _describe(cfg: ClipConfig) -> str:
    what = f"open_clip model {cfg.model!r}"
    if not cfg.model.startswith(HF_HUB_PREFIX):
        what += f" with pretrained={cfg.pretrained!r}"
    if cfg.config_file:
        what += f" (config file {cfg.config_file})"
    return what
