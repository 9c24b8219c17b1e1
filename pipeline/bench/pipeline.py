"""`nerve bench pipeline`: end-to-end images/s of the label job vs the engine alone, in one run.

Writes a shard set (real photographs at VOC sizes by default, see pipeline.bench.photos), labels it
with the label job exactly as `nerve label` runs it (local or given Ray, actors, decode threads,
writers, summary), then decodes the same shards with the same reader and runs the same engine
configuration on those images in this process: prepare, run and encode, one after another. The
ratio of the two rates is the pipeline's overhead (above 1: the pipeline is slower than its engine;
below 1: its decode threads and actors hide more than they cost).
The ratio is also given against the job's own rate once its actors are up (Ray and model start
excluded), and the job's figure for its engine batches alone is reported too.

With `models=standin` the engine is a stand-in that only waits, `standin.images_per_second` per
image (pipeline.bench.standin): the job then measures the host path alone, and with
`standin.ceiling=true` the bench also finds the host ceiling for each `standin.decode_threads`
(pipeline.bench.host), with CPU milliseconds per image per stage.
"""
from __future__ import annotations

import math
import os
import shutil
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from configs import classes_path
from nerve_core.config import EngineConfig
from nerve_core.engine import build_engine  # builds the stand-in too: importing pipeline.bench.standin registers it
from nerve_core.vocab import Vocabulary
from pipeline.bench.engine import run_batch
from pipeline.bench.host import cpu_ms_per_image, measure_ceiling, steady_state
from pipeline.bench.measure import torch_threads
from pipeline.bench.models import model_overrides
from pipeline.bench.photos import photo_samples
from pipeline.bench.standin import standin_name, standin_ray
from pipeline.config import LabelJobConfig, RayConfig
from pipeline.output.outputdir import OutputDir
from pipeline.read.reader import decode_sample, raw_samples
from pipeline.read.shardlist import expand_shards
from pipeline.sources.shard_writer import write_shards
from pipeline.sources.synthetic import demo_samples


@dataclass
class StandinBenchConfig:
    images_per_second: float = 100.0  # the stand-in engine's rate (models=standin)
    ceiling: bool = True  # also find the host ceiling, starting from images_per_second
    decode_threads: list[int] = field(default_factory=lambda: [1, 2])  # one ceiling per count
    sustain: float = 0.9  # a rate is sustained when every actor achieves >= sustain x rate
    precision: float = 0.1  # stop when the highest sustained and lowest failed rates are this close
    trial_seconds: float = 5.0  # each rate tried labels about this long's worth of shards (>= 2 shards)


@dataclass
class PipelineBenchConfig:
    output: str = "bench-results/pipeline"
    models: str = "tiny"  # tiny | full | standin (no models: the host path alone)
    images: int = 32
    per_shard: int = 8
    source: str = "photos"  # photos: real photographs, 500x375 / 375x500 JPEG q90 | synthetic: flat shapes
    min_size: int = 64  # synthetic image sides are drawn from [min_size, max_size]
    max_size: int = 160
    classes: str = "voc21"
    cache_dir: str = "~/.cache/nerve"
    seed: int = 0
    threads: int = 0  # CPU threads for the engine-alone run; 0 = torch's default (Ray actors get their CPUs)
    engine_alone: bool = True  # also run the engine alone on the same images (false: the label job only, no overhead ratios)
    engine: EngineConfig = field(default_factory=EngineConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    standin: StandinBenchConfig = field(default_factory=StandinBenchConfig)


SOURCES = ("photos", "synthetic")


def write_bench_shards(cfg: PipelineBenchConfig, directory: Path, num_classes: int) -> list[str]:
    if cfg.source not in SOURCES:
        raise ValueError(f"unknown source {cfg.source!r}; expected one of {SOURCES}")
    shutil.rmtree(directory, ignore_errors=True)
    if cfg.source == "photos":
        samples = photo_samples(cfg.images, num_classes, seed=cfg.seed)
    else:
        samples = demo_samples(cfg.images, seed=cfg.seed, min_size=cfg.min_size, max_size=cfg.max_size)
    write_shards(samples, str(directory), prefix="bench", per_shard=cfg.per_shard, progress=False)
    return expand_shards(str(directory))


def time_label_job(cfg: PipelineBenchConfig, engine_cfg, shards: list[str], out_dir: Path, ray_cfg=None) -> dict:
    """Run the label job; return its summary's figures for this run plus the wall time seen here."""
    from pipeline.run.driver import run_label_job

    job = OmegaConf.merge(
        OmegaConf.structured(LabelJobConfig),
        {
            "engine": engine_cfg,
            "dataset": {"classes": cfg.classes},
            "input": {"shards": shards},
            "output": {"dir": str(out_dir), "mode": "overwrite"},
            "ray": OmegaConf.structured(ray_cfg or cfg.ray),
            "progress": False,
        },
    )
    start = time.perf_counter()
    result = run_label_job(job)
    wall = time.perf_counter() - start
    if not result.ok:
        raise RuntimeError(f"the label job failed on {len(result.failed)} shards: {result.failed}")
    return dict(result.summary["last_run"], wall_seconds=wall)


def engine_alone(engine_cfg, shards: list[str], vocab: Vocabulary) -> dict:
    """The same engine on the same decoded images, in this process, with no Ray and no threads."""
    images = [decode_sample(raw).image for url in shards for raw in raw_samples(url)]
    start = time.perf_counter()
    engine = build_engine(engine_cfg)
    build_seconds = time.perf_counter() - start
    size = engine.cfg.batch_size
    seconds = defaultdict(float)
    start = time.perf_counter()
    for first in range(0, len(images), size):
        run_batch(engine, images[first : first + size], vocab, seconds)
    return dict(images=len(images), seconds=time.perf_counter() - start, build_seconds=build_seconds, stage_seconds=dict(seconds))


def run(cfg: PipelineBenchConfig) -> dict:
    if cfg.models == "standin":
        with standin_ray(cfg.ray):
            return _run(cfg)
    return _run(cfg)


def _run(cfg: PipelineBenchConfig) -> dict:
    out = Path(cfg.output).expanduser()
    vocab = Vocabulary.from_file(classes_path(cfg.classes))
    engine_cfg = _engine_config(cfg, cfg.standin.images_per_second)
    shards = write_bench_shards(cfg, out / "shards", len(vocab))
    job = time_label_job(cfg, engine_cfg, shards, out / "label")
    job["cpu_ms_per_image"] = cpu_ms_per_image(steady_state(list(OutputDir(str(out / "label")).stats().values())))
    measured = {
        "nerve label, end to end": dict(images=job["images"], seconds=job["wall_seconds"]),
        # the job's own figure once actors are up: shard time summed over actors, model load excluded
        "nerve label, actors up": dict(images=job["images"], seconds=job["images"] / job["labeling_images_per_second"]),
    }
    alone, threads = {}, None
    if cfg.engine_alone:
        with torch_threads(cfg.threads) as threads:
            alone = engine_alone(engine_cfg, shards, vocab)
        measured["engine alone"] = dict(images=alone["images"], seconds=alone["seconds"])
        measured["engine alone + model load"] = dict(images=alone["images"], seconds=alone["seconds"] + alone["build_seconds"])
    for value in measured.values():
        value["images_per_second"] = value["images"] / value["seconds"]
    pipeline_rate = measured["nerve label, end to end"]["images_per_second"]
    ceilings = host_ceilings(cfg, shards, out / "ceiling") if cfg.models == "standin" and cfg.standin.ceiling else []
    return dict(
        load_average=os.getloadavg(),  # the machine's 1/5/15-minute load at the end: wall figures need a quiet one
        host_ceiling_images_per_second={str(c["decode_threads"]): c["host_ceiling_images_per_second"] for c in ceilings},
        cpu_ms_per_image={str(c["decode_threads"]): c["cpu_ms_per_image"] for c in ceilings},
        ceilings=ceilings,
        benchmark="pipeline",
        config=asdict(cfg),
        measured=measured,
        label_job=job,  # the job's own figures, incl. its engine batches' images/s summed over actors
        engine_stage_seconds=alone.get("stage_seconds"),
        engine_alone_threads=threads,
        overhead_ratio=_ratio(measured, "engine alone", pipeline_rate),
        overhead_ratio_with_model_load=_ratio(measured, "engine alone + model load", pipeline_rate),
        overhead_ratio_actors_up=_ratio(measured, "engine alone", measured["nerve label, actors up"]["images_per_second"]),
    )


def _ratio(measured: dict, name: str, rate: float) -> float | None:
    """measured[name]'s images/s over `rate` (None when that path was not run: engine_alone=false)."""
    return measured[name]["images_per_second"] / rate if name in measured else None


def _engine_config(cfg: PipelineBenchConfig, images_per_second: float):
    """The engine under test: the stand-in at a rate, or the tiny / full random-weight models."""
    if cfg.models == "standin":
        return OmegaConf.merge(OmegaConf.structured(cfg.engine), {"name": standin_name(images_per_second)})
    return OmegaConf.merge(OmegaConf.structured(cfg.engine), model_overrides(cfg.models, cfg.cache_dir, cfg.seed))


def trial_shards(shards: list[str], count: int, directory: Path) -> list[str]:
    """`count` shards for one ceiling trial: the bench's own, then the same tars again under new
    names (symbolic links in `directory`) as often as it takes. Every trial then has
    standin.trial_seconds of work whatever images= is: a trial that ran out of shards was measured
    on a handful of steady shards, and its figures moved by a third from one run to the next."""
    chosen = list(shards[:count])
    if count > len(chosen):
        directory.mkdir(parents=True, exist_ok=True)
    for i in range(len(chosen), count):
        source = Path(shards[i % len(shards)]).resolve()
        link = directory / f"again{i // len(shards)}-{source.name}"
        if not link.is_symlink():
            link.symlink_to(source)
        chosen.append(str(link))
    return chosen


def host_ceilings(cfg: PipelineBenchConfig, shards: list[str], work_dir: Path) -> list[dict]:
    """The host ceiling for each of standin.decode_threads (one label job per rate tried)."""

    def label_at(rate: float, threads: int, out_dir: Path) -> list:
        ray_cfg = OmegaConf.merge(OmegaConf.structured(cfg.ray), {"decode_threads": threads})
        count = max(2, math.ceil(rate * cfg.standin.trial_seconds / cfg.per_shard))
        time_label_job(cfg, _engine_config(cfg, rate), trial_shards(shards, count, work_dir / "repeats"), out_dir, ray_cfg)
        stats = list(OutputDir(str(out_dir)).stats().values())
        shutil.rmtree(out_dir, ignore_errors=True)
        return stats

    s = cfg.standin
    return [measure_ceiling(label_at, threads, s.images_per_second, s.sustain, s.precision, work_dir)
            for threads in s.decode_threads]
