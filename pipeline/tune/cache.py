"""Driver side of the feature cache: which engine makes it, running it on the label job's actors,
and reading it back.

The cache lives in OUT/cache with the label job's layout (config.yaml + fingerprint, one stats
file per done shard, failed_shards.json, summary.json), so resume and overwrite work the same
way. Its fingerprint covers only what decides the cached content, so that another search space
or other refinement settings reuse it.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import asdict

from omegaconf import OmegaConf

from nerve_core.config import BackgroundConfig, RefineConfig, UpsampleConfig
from nerve_core.refine import get_refiner
from pipeline.job import label_part
from pipeline.output.fingerprint import job_fingerprint
from pipeline.output.outputdir import OutputDir
from pipeline.output.shard_stats import ShardStats
from pipeline.read.shardlist import expand_shards, shard_id
from pipeline.run.pending import JobResult, run_pending
from pipeline.storage import join
from pipeline.tune.cache_writer import CacheShard
from pipeline.tune.space import SearchSpace, digest


def _values(engine: dict, space: SearchSpace, key: str) -> list:
    """Every value `key` takes in some trial: the base config's, or the space's when searched."""
    if key in space.keys:
        return list(space.values[space.keys.index(key)])
    node = engine
    for part in key.split(".")[1:]:
        node = node[part]
    return [node]


def cache_engine(engine: dict, space: SearchSpace) -> dict:
    """The engine config the cache is made with: the base config with the refinement, upsampling
    and background reset, except for what decides the cached content: whether SD runs (some
    trial's refiner needs attention), whether the original pixels are kept (some trial's upsampler
    is image-guided) and the background class id (WSSS class sets)."""
    attention = any(get_refiner(name).needs_attention for name in _values(engine, space, "engine.refine.name"))
    guided = any(name != "bilinear" for name in _values(engine, space, "engine.upsample.name")) or any(
        _values(engine, space, "engine.upsample.pamr"))
    return dict(
        engine,
        refine=asdict(RefineConfig(name="random_walk" if attention else "none")),
        upsample=asdict(UpsampleConfig(name="joint_bilateral" if guided else "bilinear")),
        background=asdict(BackgroundConfig(class_id=engine["background"]["class_id"])),
    )


def cache_job(cfg, space: SearchSpace, root: str):
    """The label-job config whose actors fill the cache at `root`."""
    engine = cache_engine(OmegaConf.to_container(cfg.engine, resolve=True), space)
    return label_part(cfg, {"engine": engine, "output": {"dir": root}})


def open_cache(cfg, space: SearchSpace, root: str, synonyms: list) -> tuple:
    """(typed label job, fingerprint) of the cache at `root`, whose config.yaml is written (a cache
    of another fingerprint is refused unless output.mode=overwrite)."""
    job = cache_job(cfg, space, root)
    fingerprint = job_fingerprint(job, synonyms)
    fingerprint["cache_dtype"] = cfg.tune.cache_dtype
    fingerprint["digest"] = digest([fingerprint["digest"], cfg.tune.cache_dtype])
    OutputDir(root).prepare(asdict(job), fingerprint, cfg.output.mode)
    return job, fingerprint


def build_cache(ray, cfg, space: SearchSpace, root: str, vocab, emit) -> JobResult:
    """Fill the cache for every input shard not yet done there, on a pool of label actors that run
    the cache's own task (pipeline.tune.cache_writer.CacheShard)."""
    job, fingerprint = open_cache(cfg, space, root, vocab.synonyms)
    urls = expand_shards(cfg.input.shards)
    out = OutputDir(root)
    start = time.perf_counter()
    result, _, index = run_pending(out, urls, lambda: nullcontext(ray), job, vocab, fingerprint, emit,
                                   CacheShard(cfg.tune.cache_dtype))
    stats = list(out.read_stats(sorted(index.done() & {shard_id(u) for u in urls})).values())
    result.summary = cache_summary(stats, fingerprint["digest"], time.perf_counter() - start)
    out.write_summary(result.summary)
    return result


def cache_summary(stats: list[ShardStats], fingerprint: str, seconds: float) -> dict:
    stats = sorted(stats, key=lambda s: s.shard)
    images = [dict(image, shard=s.shard) for s in stats for image in s.cache.images]
    stored = sum(s.cache.bytes for s in stats)
    return {
        "shards": len(stats), "samples": sum(s.samples for s in stats), "errors": sum(s.errors for s in stats),
        "no_gt": sum(s.cache.no_gt for s in stats), "images": len(images), "bytes": stored,
        "bytes_per_image": stored / len(images) if images else None,
        "qk_dtype": next((s.cache.qk_dtype for s in stats), None),
        "layers": next((s.cache.layers for s in stats if s.cache.layers), []),
        "fingerprint": fingerprint, "seconds_this_run": round(seconds, 3), "index": images,
    }


def image_id(entry: dict) -> str:
    """A cached image's name in the split: shard/key, with #n for a key's later occurrences."""
    name = f"{entry['shard']}/{entry['key']}"
    return f"{name}#{entry['occurrence']}" if entry.get("occurrence") else name


def load_image(fs, root: str, entry: dict) -> dict:
    """A cached image's tensors (probs, q.j, k.j, gt, and guide when stored), on the CPU."""
    from safetensors.torch import load

    return load(fs.cat_file(join(root, "shards", entry["file"])))
