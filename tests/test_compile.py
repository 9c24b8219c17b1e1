"""engine.compile: a compiled engine labels like the eager one and compiles once per batch shape.

The default run traces with dynamo's eager backend: the graphs, guards, graph breaks and the
in-graph early stop of the UNet are those of real use, without inductor's code generation (minutes
of gcc on a small CPU). The slow run compiles with inductor and compares the numbers with tolerances.
"""
import functools

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from torch._dynamo.utils import counters

from nerve_core.compiling import COMPILE_MODES
from nerve_core.engine import build_engine
from nerve_core.vocab import Vocabulary

VOCAB = Vocabulary.from_lines(["sky, wall", "cat", "dog", "car"])


def images(seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in [(40, 56), (61, 33)]]


def pixels(arrays) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


@pytest.fixture(params=["eager", pytest.param("inductor", marks=pytest.mark.slow)])
def backend(request):
    """torch.compile with this backend, from a clean dynamo cache and counters."""
    if request.param == "eager":
        request.getfixturevalue("eager_dynamo")
    torch._dynamo.reset()
    counters.clear()
    yield request.param
    torch._dynamo.reset()


def compile_counts() -> dict:
    return {"frames": dict(counters["frames"]), "graphs": counters["stats"]["unique_graphs"]}


def assert_same_stages(eager, compiled, prepared, reordered: bool) -> None:
    """CLIP features and SD q, k of the compiled engine against the eager one. Even dynamo's eager
    backend is not bit-exact for CLIP: nn.MultiheadAttention's fused inference path is not traced."""
    tolerance = 1e-4 if reordered else 1e-5
    close = functools.partial(torch.allclose, rtol=tolerance, atol=tolerance)
    clip = pixels([p.clip for p in prepared])
    assert close(compiled.head.patch_features(clip), eager.head.patch_features(clip))
    sd = pixels([p.sd for p in prepared])
    for ours, theirs in zip(compiled.sd(sd), eager.sd(sd), strict=True):
        assert ours.grid == theirs.grid
        assert close(ours.q, theirs.q) and close(ours.k, theirs.k)


def test_compiled_engine_labels_like_eager_and_compiles_once(tiny_engine_config, backend):
    eager = build_engine(tiny_engine_config)
    compiled = build_engine(OmegaConf.merge(tiny_engine_config, {"compile": "default"}))
    reordered = backend == "inductor"  # generated kernels sum floats in another order
    for seed in (0, 1):  # two batches of the same shape, different images
        prepared = [eager.prepare(image) for image in images(seed)]
        assert_same_stages(eager, compiled, prepared, reordered)
        ours = compiled.run(prepared, VOCAB, confidence=True)
        theirs = eager.run(prepared, VOCAB, confidence=True)
        for a, b in zip(ours, theirs, strict=True):
            assert (a.labels != b.labels).mean() <= (1e-3 if reordered else 0)  # a near-tie may flip
            assert np.abs(a.confidence.astype(int) - b.confidence.astype(int)).max() <= (1 if reordered else 0)
        if seed == 0:
            counts = compile_counts()
    assert counts["graphs"] == 3  # CLIP trunk, VAE encoder, UNet up to the last captured layer
    assert compile_counts() == counts  # the second batch reused every graph
    assert not counters["graph_break"]  # the early stop ends the UNet graph, it does not break it


def test_unknown_compile_mode_is_refused_before_loading_models(tiny_engine_config):
    cfg = OmegaConf.merge(tiny_engine_config, {"compile": "fastest", "clip": {"pretrained": "/nonexistent"}})
    with pytest.raises(ValueError, match=", ".join(COMPILE_MODES)):
        build_engine(cfg)
