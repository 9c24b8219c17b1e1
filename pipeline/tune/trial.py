"""One trial: the engine's own finishing code (refine, upsample, background) with the trial's
settings on the cached features of every image, scored like `nerve label` scores.

Runs as a Ray Tune function trainable. Its record (settings, mIoU on the tune and check parts,
seconds) is written to OUT/tune/trials/{key}.json when it ends; the key is a digest of the
trial's settings and of everything else that decides its result, so a rerun finds a finished
trial there and reports it again without recomputing it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from pipeline.output.writers import read_json, write_json
from pipeline.storage import filesystem, join
from pipeline.tune.cache import load_image
from pipeline.tune.space import SearchSpace, digest, engine_with


@dataclass(frozen=True)
class TrialContext:
    """Everything a trial needs, shipped once to the Ray object store (tune.with_parameters)."""

    cache_dir: str
    trials_dir: str
    engine: dict  # the base engine config, device set for the trials
    base: str  # digest of everything but the searched settings (engine, data, cache, split)
    space: SearchSpace
    points: tuple  # grid / random: the settings of each point, chosen up front
    parts: dict  # "tune" / "check" -> cached image entries
    layers: tuple  # the captured SD layers' names and node grids, in cache order
    class_names: tuple
    ignore_index: int
    threads: int  # torch threads of a CPU trial (0: leave torch's default)

    def settings(self, config: dict) -> dict:
        """A Tune config -> the trial's settings: {"point": n} (grid, random) or one value index per key (optuna)."""
        if "point" in config:
            return self.points[config["point"]]
        return self.space.settings([config[f"p{j}"] for j in range(len(self.space.keys))])

    def key(self, settings: dict) -> str:
        return digest([self.base, settings])


def run_trial(config: dict, context: TrialContext) -> None:
    """The Ray Tune trainable: score one setting (or find its finished record) and report it."""
    from ray import tune

    record = score_settings(context, context.settings(config))
    tune.report({"miou": record["miou"], "miou_check": np.nan if record["miou_check"] is None else record["miou_check"],
                 "seconds": record["seconds"], "trial": record["trial"]})


def score_settings(context: TrialContext, settings: dict) -> dict:
    """The trial's record, computed and written, or read back when a run before finished it."""
    fs, root = filesystem(context.trials_dir)
    key = context.key(settings)
    path = join(root, f"{key}.json")
    if fs.exists(path):
        return read_json(fs, path)
    import torch

    from nerve_core.config import as_engine_config
    from nerve_core.engine import Engine

    if context.threads:
        torch.set_num_threads(context.threads)
    engine = Engine(as_engine_config(engine_with(context.engine, settings)), load_models=False)
    start = time.perf_counter()
    figures = {part: part_miou(engine, context, entries) for part, entries in context.parts.items()}
    record = {
        "trial": key, "base": context.base, "settings": settings, "miou": figures["tune"], "miou_check": figures.get("check"),
        "seconds": round(time.perf_counter() - start, 4), "images": {part: len(e) for part, e in context.parts.items()},
        "device": str(engine.device), "finished_at": time.time(),
    }
    if record["miou"] is None:
        raise ValueError("no ground-truth pixel was scored in the tune part")
    write_json(fs, path, record)
    return record


def part_miou(engine, context: TrialContext, entries) -> float | None:
    """Dataset-level mIoU of one part, from the summed confusion of its images."""
    from pipeline.read.prefetch import PrefetchMap
    from pipeline.score.scoring import confusion_matrix, summarize_confusion

    k = len(context.class_names)
    confusion = np.zeros((k, k + 1), dtype=np.int64)
    size = max(1, engine.cfg.batch_size)
    batches = [entries[i : i + size] for i in range(0, len(entries), size)]
    fs, root = filesystem(context.cache_dir)
    for batch, images in PrefetchMap(lambda b: (b, [load_image(fs, root, e) for e in b]), batches, 1, 2):
        for image, segmentation in zip(images, finish_cached(engine, context.layers, batch, images)):
            confusion += confusion_matrix(segmentation.labels, image["gt"].numpy(), k, context.ignore_index)
    return summarize_confusion(confusion, list(context.class_names))["miou"]


@dataclass(frozen=True)
class CachedLayer:
    """A captured layer read back from the cache: the fields of nerve_core.sd.capture.LayerQK,
    without importing diffusers into every trial process."""

    name: str
    q: object  # (B, heads, N, d) tensor
    k: object
    grid: tuple


def finish_cached(engine, layers, entries, images) -> list:
    """engine.finish on cached images: the same tensors the label job hands it after its models."""
    import torch

    from nerve_core.engine import Features
    from nerve_core.imageprep import Prepared

    def stacked(name):
        return torch.stack([image[name] for image in images]).to(engine.device)

    qk = [CachedLayer(layer["name"], stacked(f"q.{j}"), stacked(f"k.{j}"), tuple(layer["grid"])) for j, layer in enumerate(layers)]
    features = Features([image["probs"].to(engine.device) for image in images], qk, [e["classes"] for e in entries])
    prepared = [Prepared(clip=None, sd=None, size=tuple(e["size"]), guide=image["guide"].numpy() if "guide" in image else None)
                for e, image in zip(entries, images)]
    return engine.finish(features, prepared)
