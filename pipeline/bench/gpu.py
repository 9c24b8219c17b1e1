"""`nerve bench gpu`: the GPU acceptance run, one command, one JSON and one Markdown table.

On one H100/H200, with full-size random-weight models (the real SD2.1-base and CLIP ViT-L/14-336
architectures) in fp16, it runs three benchmarks one after another and puts their figures side by side:

- the engine batch sweep (`sweep.batch_sizes`, eager), plus torch.compile at `compile_batch_sizes`
  only (every new batch shape compiles again, which would take most of the time budget);
- refinement on the device (`refine.*`: the refinement bench's sizes, class counts, batched walks);
- `nerve label` on `label.images` real photographs against the engine alone (`label.*`).

The top-level `models`, `device`, `dtype`, `cache_dir` and `classes` are applied to all three, so
that a CPU smoke test is `models=tiny device=cpu dtype=float32` plus small sizes (see tests/test_bench.py). Every section's
keys stay available (`sweep.batches=2`, `refine.sizes=[...]`, `label.images=64`, ...).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from pipeline.bench import engine as engine_bench
from pipeline.bench import pipeline as pipeline_bench
from pipeline.bench import refine as refine_bench
from pipeline.bench.engine import EngineBenchConfig
from pipeline.bench.pipeline import PipelineBenchConfig
from pipeline.bench.refine import RefineBenchConfig


@dataclass
class GpuBenchConfig:
    output: str = "bench-results/gpu"
    models: str = "full"  # full | tiny (smoke tests)
    device: str = "cuda"  # engine and refinement device
    dtype: str = "float16"
    cache_dir: str = "~/.cache/nerve"  # where the random-weight models are written once
    classes: str = "voc21"  # vocabulary of the engine sweep and the label job
    compiles: list[str] = field(default_factory=lambda: ["default"])  # compared with eager at compile_batch_sizes
    compile_batch_sizes: list[int] = field(default_factory=lambda: [16])
    sweep: EngineBenchConfig = field(default_factory=lambda: EngineBenchConfig(
        batch_sizes=[1, 2, 4, 8, 16, 32], batches=3))
    refine: RefineBenchConfig = field(default_factory=lambda: RefineBenchConfig(
        sizes=[1024, 4096, 9216, 16384], classes=[21, 171], images=[1, 32], forms=["cosine", "shifted_cosine"]))
    label: PipelineBenchConfig = field(default_factory=lambda: PipelineBenchConfig(images=512, per_shard=64))
    label_batch_size: int = 16  # engine.batch_size of the label job and of the engine alone


def section_configs(cfg: GpuBenchConfig) -> tuple[EngineBenchConfig, EngineBenchConfig, RefineBenchConfig,
                                                  PipelineBenchConfig]:
    """(eager sweep, compiled points, refinement, label job) with the top-level keys applied."""
    sweep = replace(cfg.sweep, models=[cfg.models], dtypes=[cfg.dtype], compiles=["none"], cache_dir=cfg.cache_dir,
                    classes=cfg.classes, engine=replace(cfg.sweep.engine, device=cfg.device))
    compiled = replace(sweep, compiles=list(cfg.compiles), batch_sizes=list(cfg.compile_batch_sizes))
    refine = replace(cfg.refine, device=cfg.device)
    label = replace(cfg.label, models=cfg.models, source="photos", cache_dir=cfg.cache_dir, classes=cfg.classes,
                    output=str(Path(cfg.output) / "pipeline"),  # its shards and label outputs, under this run's output
                    engine=replace(cfg.label.engine, device=cfg.device, dtype=cfg.dtype, batch_size=cfg.label_batch_size))
    return sweep, compiled, refine, label


def run(cfg: GpuBenchConfig) -> dict:
    sweep_cfg, compiled_cfg, refine_cfg, label_cfg = section_configs(cfg)
    seconds = {}
    start = time.perf_counter()
    sweep = engine_bench.run(sweep_cfg)
    if cfg.compiles and cfg.compile_batch_sizes:
        sweep["runs"] += engine_bench.run(compiled_cfg)["runs"]
        engine_bench.add_speedups(sweep["runs"])  # compiled points against the eager sweep's
    seconds["engine"] = time.perf_counter() - start
    start = time.perf_counter()
    refine = refine_bench.run(refine_cfg)
    seconds["refine"] = time.perf_counter() - start
    start = time.perf_counter()
    label = pipeline_bench.run(label_cfg)
    seconds["label"] = time.perf_counter() - start
    return dict(
        benchmark="gpu",
        device_name=sweep["device_name"],
        config=asdict(cfg),
        seconds=seconds,  # wall time of each part: the whole command is meant to fit in 8 minutes
        engine=sweep,
        refine=refine,
        pipeline=label,
    )
