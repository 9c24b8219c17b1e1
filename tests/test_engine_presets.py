"""Every engine preset in configs/engines/ builds and labels images with the tiny models."""
import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf
from PIL import Image

from configs import CONFIG_DIR
from nerve_core.config import EngineConfig
from nerve_core.engine import build_engine
from nerve_core.vocab import Vocabulary

PRESETS = sorted(p.stem for p in (CONFIG_DIR / "engines").glob("*.yaml"))
VOCAB = Vocabulary.from_lines(["sky, wall", "cat", "dog, puppy"])


def test_all_issue_presets_exist():
    assert {"nerve", "naclip", "dslo-op", "dslo-mv", "iseg-refine"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_labels_images_with_tiny_models(preset, tiny_models):
    layers = yaml.safe_load((CONFIG_DIR / "engines" / f"{preset}.yaml").read_text())
    cfg = OmegaConf.merge(OmegaConf.structured(EngineConfig), layers, tiny_models, {"device": "cpu"})
    engine = build_engine(cfg)
    assert engine.cfg.name == preset
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in [(40, 70), (90, 31)]]
    maps = engine.segment(images, VOCAB)
    for im, labels in zip(images, maps):
        assert labels.shape == (im.height, im.width)
        assert set(np.unique(labels)) <= {0, 1, 2}
