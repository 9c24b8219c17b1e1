"""`nerve bench engine`: time per stage, images/s and (on CUDA) the fraction of peak FLOP/s.

For each model set (tiny, or full-size random weights of the real SD2.1-base and CLIP ViT-L/14-336),
dtype, compile mode (engine.compile) and batch size it runs one warm-up batch, timed apart as
`warmup_seconds` (with torch.compile it holds the compilation for that batch shape), then `batches`
timed batches of synthetic images at a fixed size, each through the same calls the pipeline makes:
`engine.prepare` per image (the decode thread's work), `engine.run` per batch (CLIP, VAE, UNet,
refinement, upsampling; the engine's own StageTimer splits it, synchronised with the device) and the
writers' PNG + COCO RLE encoding per image. One more batch measures memory: the models' weights plus
the batch's peak above them (CUDA: the allocator's peak; CPU: sampled RSS). One more runs under a
FLOP counter to give FLOPs per stage from the models' real shapes. `speedup` is a row's engine
images/s over the eager (compile none) row of the same models, dtype and batch size, when the sweep
has one.
"""
from __future__ import annotations

import itertools
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image

from configs import classes_path
from nerve_core.config import EngineConfig
from nerve_core.vocab import Vocabulary
from pipeline.bench.flops import FlopStageTimer, achieved_fraction, peak_tflops
from pipeline.bench.measure import module_bytes, peak_memory, torch_threads
from pipeline.bench.models import model_overrides
from pipeline.output.pngcodec import encode_index_png
from pipeline.output.writers import coco_results

# Disjoint stages in report order. The SD extractor splits the engine's "sd" stage into "vae" and
# "unet"; what is left of it (moving pixels to the device) is "sd_other".
STAGES = ("prepare", "clip", "sd", "vae", "unet", "sd_other", "refine", "upsample", "encode")
ENGINE_STAGES = ("clip", "sd", "vae", "unet", "sd_other", "refine", "upsample")  # inside engine.run


def disjoint(values: dict) -> dict:
    """Stage figures that add up: "sd" replaced by "sd_other" when "vae" and "unet" are inside it."""
    out = dict(values)
    if "vae" in out and "unet" in out and "sd" in out:
        out["sd_other"] = max(0, out.pop("sd") - out["vae"] - out["unet"])
    return {s: out[s] for s in STAGES if s in out}


@dataclass
class EngineBenchConfig:
    output: str = "bench-results/engine"
    models: list[str] = field(default_factory=lambda: ["tiny"])  # tiny | full
    threads: int = 0  # CPU threads for torch; 0 = torch's default
    dtypes: list[str] = field(default_factory=lambda: ["auto"])  # auto | float32 | float16 | bfloat16
    compiles: list[str] = field(default_factory=lambda: ["none"])  # engine.compile modes to compare
    batch_sizes: list[int] = field(default_factory=lambda: [1, 2])  # a GPU run: 1..32 (docs/benchmarks.md)
    batches: int = 2  # timed batches per point, after one warm-up batch
    image_height: int = 375  # synthetic images at a typical VOC size
    image_width: int = 500
    classes: str = "voc21"  # class-name file (configs/classes/<name>.txt or a path)
    cache_dir: str = "~/.cache/nerve"  # where the random-weight models are written once
    seed: int = 0
    count_flops: bool = True
    peak_tflops: float = 0.0  # > 0 overrides the data-sheet peak of the GPU
    engine: EngineConfig = field(default_factory=EngineConfig)


def synthetic_images(count: int, height: int, width: int, seed: int) -> list[Image.Image]:
    """Smooth random colour fields with pixel noise: photo-like compressibility at a fixed size."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((width, height), Image.BICUBIC)
        noisy = np.asarray(coarse, dtype=np.int16) + rng.integers(-12, 13, (height, width, 3))
        images.append(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)))
    return images


def build_bench_engine(cfg: EngineBenchConfig, models: str, dtype: str, compile_mode: str):
    """The engine for one model set, dtype and compile mode, its SD extractor reporting VAE and UNet time."""
    from nerve_core.engine import build_engine

    engine_cfg = OmegaConf.merge(OmegaConf.structured(cfg.engine), model_overrides(models, cfg.cache_dir, cfg.seed),
                                 {"dtype": dtype, "compile": compile_mode})
    engine = build_engine(engine_cfg)
    _share_timer(engine, engine.timer)
    return engine


def _share_timer(engine, timer) -> None:
    engine.timer = timer
    if engine.sd is not None:
        engine.sd.timer = timer


def run_batch(engine, images, vocab, seconds: dict[str, float]) -> None:
    """One batch through prepare -> run -> encode, adding each stage's seconds to `seconds`."""
    prepared = [engine.prepare(image) for image in images]
    seconds["prepare"] += sum(p.seconds for p in prepared)
    segmentations = engine.run(prepared, vocab)
    for stage, value in engine.timer.take().items():
        seconds[stage] += value
    start = time.perf_counter()
    for image_id, seg in enumerate(segmentations):
        encode_index_png(seg.labels)
        coco_results(image_id, seg.labels)
    seconds["encode"] += time.perf_counter() - start


def count_flops(engine, images, vocab) -> dict[str, int]:
    """FLOPs per engine stage of one batch (a FlopStageTimer stands in for the engine's timer).

    Run eagerly even in a compiled engine: the counter cannot see inside compiled kernels, and
    compiling does not change the FLOPs the models need."""
    timer = engine.timer
    counter = FlopStageTimer(engine.device)
    _share_timer(engine, counter)
    try:
        with torch.compiler.set_stance("force_eager"):
            engine.run([engine.prepare(image) for image in images], vocab)
    finally:
        _share_timer(engine, timer)
    return dict(counter.flops)


def engine_modules(engine) -> list[torch.nn.Module]:
    """The models an engine keeps: CLIP (both towers) and, when loaded, the VAE and the UNet."""
    sd = [engine.sd.models.vae, engine.sd.models.unet] if engine.sd is not None else []
    return [engine.head.text.model, *sd]


def memory(engine, images, vocab) -> dict:
    """Weights, and the peak of one batch above them, measured apart from the timed batches."""
    peak, method = peak_memory(lambda: run_batch(engine, images, vocab, defaultdict(float)), engine.device)
    weights = module_bytes(engine_modules(engine))
    total = None if peak is None else weights + peak
    return dict(model_bytes=weights, batch_peak_bytes=peak, engine_peak_bytes=total, memory_method=method)


def bench_point(engine, images, vocab, cfg: EngineBenchConfig, models: str, dtype: str) -> dict:
    start = time.perf_counter()
    run_batch(engine, images, vocab, defaultdict(float))  # warm-up: compilation, kernels, caches, allocator
    warmup = time.perf_counter() - start
    seconds: dict[str, float] = defaultdict(float)
    start = time.perf_counter()
    for _ in range(cfg.batches):
        run_batch(engine, images, vocab, seconds)
    wall = time.perf_counter() - start
    count = len(images) * cfg.batches
    seconds = disjoint(seconds)
    engine_seconds = sum(v for s, v in seconds.items() if s in ENGINE_STAGES)
    row = dict(
        models=models,
        dtype=str(engine.dtype).removeprefix("torch."),
        requested_dtype=dtype,
        compile=engine.cfg.compile,
        batch_size=len(images),
        images=count,
        warmup_seconds=warmup,
        stage_seconds_per_image={s: v / count for s, v in seconds.items()},
        images_per_second=count / wall,  # prepare, engine and encode one after another
        engine_images_per_second=count / engine_seconds,  # engine.run alone (the pipeline overlaps the rest)
        **memory(engine, images, vocab),
    )
    if cfg.count_flops:
        flops = disjoint(count_flops(engine, images, vocab))
        total = sum(flops.values())
        row["flops_per_image"] = {s: v / len(images) for s, v in flops.items()}
        row["tflops_per_second"] = total / (engine_seconds / cfg.batches) / 1e12
        peak, source = peak_tflops(engine.device, engine.dtype, cfg.peak_tflops)
        row.update(peak_tflops=peak, peak_source=source, peak_fraction=achieved_fraction(total, engine_seconds / cfg.batches, peak))
    return row


def add_speedups(rows: list[dict]) -> None:
    """`speedup` of each row: its engine images/s over the eager (compile none) row of the same point."""
    eager = {(r["models"], r["dtype"], r["batch_size"]): r for r in rows if r["compile"] == "none"}
    for row in rows:
        base = eager.get((row["models"], row["dtype"], row["batch_size"]))
        row["speedup"] = None if base is None else row["engine_images_per_second"] / base["engine_images_per_second"]


def run(cfg: EngineBenchConfig) -> dict:
    vocab = Vocabulary.from_file(classes_path(cfg.classes))
    images = synthetic_images(max(cfg.batch_sizes), cfg.image_height, cfg.image_width, cfg.seed)
    rows, device = [], None
    with torch_threads(cfg.threads) as threads:
        for models, dtype, compile_mode in itertools.product(cfg.models, cfg.dtypes, cfg.compiles):
            engine = build_bench_engine(cfg, models, dtype, compile_mode)
            device = engine.device
            rows += [bench_point(engine, images[:b], vocab, cfg, models, dtype) for b in cfg.batch_sizes]
            del engine
    add_speedups(rows)
    seen = {s for r in rows for s in r["stage_seconds_per_image"]}
    return dict(
        benchmark="engine",
        device=str(device),
        device_name=torch.cuda.get_device_name(device) if device is not None and device.type == "cuda" else "cpu",
        threads=threads,
        classes=len(vocab),
        config=asdict(cfg),
        stages=[s for s in STAGES if s in seen],
        runs=rows,
    )
