"""float16, the GPU's default precision, checked on the CPU: every preset runs in it end to end and
labels (almost) every pixel as float32 does. This is the GPU path's dtype handling (half-precision
models feeding float32 refinement, upsampling and the background rule) without a GPU."""
import numpy as np
import pytest
import torch
import yaml
from omegaconf import OmegaConf

from configs import CONFIG_DIR
from nerve_core.config import EngineConfig
from nerve_core.engine import build_engine
from nerve_core.vocab import Vocabulary
from pipeline.bench.engine import synthetic_images

PRESETS = sorted(p.stem for p in (CONFIG_DIR / "engines").glob("*.yaml"))
VOCAB = Vocabulary.from_lines(["background, sky", "cat", "dog, puppy", "car"])
# Rounding moves near-tied pixels only; with random weights many pixels are near ties, so this is
# a floor well below what we measure (>= 99.6% per preset), not an exact-equality check.
MIN_AGREEMENT = 0.98


def labels_in(dtype: str, preset: str, tiny_models, images) -> tuple[np.ndarray, set[torch.dtype]]:
    """The label maps of one preset in one precision, and the dtypes its models hold."""
    layers = yaml.safe_load((CONFIG_DIR / "engines" / f"{preset}.yaml").read_text())
    cfg = OmegaConf.merge(OmegaConf.structured(EngineConfig), layers, tiny_models, {"device": "cpu", "dtype": dtype})
    engine = build_engine(cfg)
    model_dtypes = {p.dtype for p in engine.head.visual.parameters()}
    if engine.sd is not None:
        model_dtypes |= {p.dtype for p in engine.sd.models.unet.parameters()}
    return np.stack(engine.segment(images, VOCAB)), model_dtypes


@pytest.mark.parametrize("preset", PRESETS)
def test_float16_labels_agree_with_float32(preset, tiny_models):
    images = synthetic_images(2, 60, 80, seed=0)
    full, full_dtypes = labels_in("float32", preset, tiny_models, images)
    half, half_dtypes = labels_in("float16", preset, tiny_models, images)
    assert full_dtypes == {torch.float32} and half_dtypes == {torch.float16}
    assert half.shape == full.shape and half.dtype == np.uint8
    assert (half == full).mean() >= MIN_AGREEMENT
