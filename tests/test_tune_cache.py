"""The feature cache without Ray: what the cache actors store, finished by a model-free engine,
gives the label path's very pixels; the best trial's walk diagnostics, computed from the cache
as the walk computes them, reach the report."""
from dataclasses import asdict

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from configs import classes_path
from nerve_core.config import EngineConfig
from nerve_core.engine import Engine, build_engine
from nerve_core.vocab import Vocabulary
from pipeline.config import LabelJobConfig, OutputConfig
from pipeline.job import ActorJob
from pipeline.read.reader import decode_sample, raw_samples
from pipeline.storage import filesystem
from pipeline.tune.cache import load_image
from pipeline.tune.cache_writer import ShardCache
from pipeline.tune.diagnostics import walk_diagnostics_of
from pipeline.tune.report import render_report
from pipeline.tune.space import SearchSpace
from pipeline.tune.trial import TrialContext, finish_cached
from tests.shards import make_demo_shards


@pytest.mark.parametrize("upsample", ["bilinear", "joint_bilateral"])
def test_cached_features_finish_to_the_label_paths_pixels(tiny_engine_config, tmp_path, upsample):
    cfg = OmegaConf.merge(tiny_engine_config, {"upsample": {"name": upsample}, "background": {"rule": "argmax"}})
    engine = build_engine(cfg)
    vocab = Vocabulary.from_file(classes_path("demo"))
    make_demo_shards(tmp_path / "shards", 3, per_shard=3, max_size=64)
    samples = [decode_sample(raw) for raw in raw_samples(str(tmp_path / "shards" / "shard-000000.tar"))]
    batch = [(s, engine.prepare(s.image)) for s in samples]
    want = engine.run([p for _, p in batch], vocab)
    job = ActorJob(LabelJobConfig(output=OutputConfig(dir=str(tmp_path / "cache"))), classes=vocab.synonyms, fingerprint="f")
    cache = ShardCache(engine, vocab, job, "shard-000000")
    cache.add(batch)
    stats = cache.close("shard-000000.tar", 0, None)
    assert (stats.samples, stats.ok, len(stats.cache.images)) == (3, 3, 3)
    fs, root = filesystem(str(tmp_path / "cache"))
    images = [load_image(fs, root, entry) for entry in stats.cache.images]
    assert ("guide" in images[0]) == (upsample != "bilinear")  # the original pixels only where the upsampler reads them
    got = finish_cached(Engine(engine.cfg, load_models=False), stats.cache.layers, stats.cache.images, images)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.labels, w.labels)


def test_best_trials_walk_diagnostics_reach_the_report(tmp_path):
    """The best trial's settings and one tune image's G on the node grid and q, k: the figures
    are the walk's own diagnostics of those tensors."""
    from nerve_core.refine.random_walk import walk_diagnostics
    from nerve_core.refine.walk import node_probabilities

    grid, heads = (4, 5), 2
    g = torch.Generator().manual_seed(0)
    tensors = {"probs": torch.softmax(torch.randn(3, 2, 2, generator=g), 0), "q.0": torch.randn(heads, 20, 8, generator=g),
               "k.0": torch.randn(heads, 20, 8, generator=g), "gt": torch.zeros(2, 2, dtype=torch.uint8)}
    (tmp_path / "shards").mkdir()
    save_file(tensors, tmp_path / "shards" / "img.safetensors")
    engine = asdict(EngineConfig())
    space = SearchSpace.from_config({"engine.refine.beta": [0.3, 0.6]}, engine)
    entry = {"shard": "s", "key": "k", "file": "img.safetensors", "size": [2, 2], "classes": [0, 1, 2]}
    context = TrialContext(str(tmp_path), str(tmp_path), engine, "b", space, (), {"tune": (entry,), "check": ()},
                           ({"name": "l", "grid": list(grid)},), ("a", "b", "c"), 255, 0)
    figures = walk_diagnostics_of(context, {"engine.refine.beta": 0.6})
    refine = dict(engine["refine"], beta=0.6)
    G = node_probabilities(tensors["probs"], grid, "cpu", refine["remainder"])[0]
    options = {key: refine[key] for key in ("temperature", "power", "features", "block_size", "sign_handling", "row_floor")}
    want = walk_diagnostics(G, tensors["q.0"], tensors["k.0"], grid, beta=0.6, c=refine["c"], eps_self=refine["eps_self"],
                            affinity=refine["global_affinity"], **options)
    assert figures == {"image": "s/k", **want} and len(figures["head_weights"]) == heads
    row = {"trial": "t", "settings": {"engine.refine.beta": 0.6}, "miou": 50.0, "miou_check": None, "seconds": 1.0}
    html = render_report(space, [row], {"output": "OUT"}, figures)
    assert "Walk diagnostics of the best trial" in html and "head_weights" in html
    assert html.count("data:image/png;base64,") == 1
    none = dict(engine, refine=dict(engine["refine"], name="none"))
    assert walk_diagnostics_of(TrialContext(**{**context.__dict__, "engine": none}), {"engine.refine.beta": 0.6}) is None
