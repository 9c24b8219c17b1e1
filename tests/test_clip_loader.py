"""CLIP loading through open_clip: the tiny model's real path, safety, and clear failures."""
from __future__ import annotations

import json
import pathlib

import open_clip
import pytest
import torch
from safetensors.torch import load_file

from nerve_core.config import ClipConfig
from nerve_core.models.clip_loader import (
    RANDOM_WEIGHTS,
    create_model_arguments,
    load_clip,
    preprocess_mean_std,
)
from nerve_core.models.errors import ModelNotFoundError
from nerve_core.models.tiny_clip import write_tiny_clip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_clip(tmp_path_factory.mktemp("tiny_clip"), seed=0)


def test_tiny_clip_loads_the_written_weights_frozen_in_the_requested_dtype(tiny):
    model, tokenizer = load_clip(ClipConfig(**tiny), "cpu", torch.float64)
    written = load_file(tiny["pretrained"])
    state = model.state_dict()
    assert set(written) == set(state)
    for name, tensor in written.items():
        assert torch.equal(state[name], tensor.to(torch.float64)), name
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert tokenizer(["a photo of a cat"]).shape == (1, 77)
    openai = (open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)
    assert preprocess_mean_std(model) == openai


def test_tiny_clip_weights_are_a_function_of_the_seed(tmp_path):
    a = load_file(write_tiny_clip(tmp_path / "a", seed=3)["pretrained"])
    b = load_file(write_tiny_clip(tmp_path / "b", seed=3)["pretrained"])
    c = load_file(write_tiny_clip(tmp_path / "c", seed=4)["pretrained"])
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["visual.conv1.weight"], c["visual.conv1.weight"])


def test_random_weights_build_the_architecture_without_a_checkpoint(tiny):
    cfg = ClipConfig(**{**tiny, "pretrained": RANDOM_WEIGHTS})
    model, _ = load_clip(cfg, "cpu", torch.float32)
    written = load_file(tiny["pretrained"])
    assert model.visual.conv1.weight.shape == written["visual.conv1.weight"].shape
    assert not torch.equal(model.visual.conv1.weight, written["visual.conv1.weight"])


def test_openai_tag_trained_with_quick_gelu_forces_quick_gelu():
    # open_clip 3.x would otherwise build ViT-L-14-336 with GELU and only warn.
    kwargs = create_model_arguments(ClipConfig())
    assert kwargs["model_name"] == "ViT-L-14-336"
    assert kwargs["pretrained"] == "openai"
    assert kwargs["force_quick_gelu"] is True
    assert kwargs["weights_only"] is True


def test_pickle_checkpoint_cannot_run_code(tiny, tmp_path):
    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return (pathlib.Path.touch, (pathlib.Path(marker),))

    checkpoint = tmp_path / "evil.pt"
    torch.save({"visual.conv1.weight": Payload()}, checkpoint)
    with pytest.raises(ModelNotFoundError):
        load_clip(ClipConfig(**{**tiny, "pretrained": str(checkpoint)}), "cpu", torch.float32)
    assert not marker.exists()


@pytest.mark.parametrize(
    "overrides, named",
    [
        ({"model": "no-such-architecture", "config_file": "", "pretrained": RANDOM_WEIGHTS},
         "no-such-architecture"),
        ({"pretrained": "/nonexistent/weights.safetensors"}, "/nonexistent/weights.safetensors"),
        ({"config_file": "/nonexistent/nerve-tiny-clip.json"}, "/nonexistent/nerve-tiny-clip.json"),
        ({"model": "other-name"}, "other-name"),
        ({"model": "ViT-B-32", "config_file": "", "pretrained": "no-such-tag"}, "no-such-tag"),
        ({"model": "hf-hub:nerve-tests/no-such-repo"}, "hf-hub:nerve-tests/no-such-repo"),
        ({"pretrained": ""}, "pretrained=''"),
    ],
)
def test_missing_or_unloadable_models_raise_model_not_found(tiny, overrides, named):
    with pytest.raises(ModelNotFoundError) as info:
        load_clip(ClipConfig(**{**tiny, **overrides}), "cpu", torch.float32)
    assert named in str(info.value)


def test_truncated_checkpoint_and_foreign_config_raise_model_not_found(tiny, tmp_path):
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(pathlib.Path(tiny["pretrained"]).read_bytes()[:1000])
    with pytest.raises(ModelNotFoundError):
        load_clip(ClipConfig(**{**tiny, "pretrained": str(truncated)}), "cpu", torch.float32)

    foreign = tmp_path / "nerve-tiny-clip.json"
    foreign.write_text(json.dumps({"hidden_size": 32}), encoding="utf-8")
    with pytest.raises(ModelNotFoundError, match="not an open_clip config"):
        load_clip(ClipConfig(**{**tiny, "config_file": str(foreign)}), "cpu", torch.float32)
