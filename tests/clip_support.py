"""The tiny CLIP the head tests run on, and what they build from it."""
from __future__ import annotations

import torch

from nerve_core.clip.dense_head import DenseClipHead
from nerve_core.config import ClipConfig
from nerve_core.models.clip_loader import load_clip
from nerve_core.models.tiny_clip import write_tiny_clip
from nerve_core.vocab import Vocabulary

VOCAB = Vocabulary.from_lines(["background, sky, wall", "cat", "dog, puppy"])


def tiny_clip(tmp_path_factory):
    """(overrides, model, tokenizer) of a tiny CLIP written for one test module."""
    overrides = write_tiny_clip(tmp_path_factory.mktemp("tiny_clip"), seed=1)
    model, tokenizer = load_clip(ClipConfig(**overrides), "cpu", torch.float32)
    return overrides, model, tokenizer


def make_head(tiny, **changes) -> DenseClipHead:
    overrides, model, tokenizer = tiny
    return DenseClipHead(model, tokenizer, ClipConfig(**{**overrides, **changes}))


def pixels(batch, height, width, seed=0):
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))
