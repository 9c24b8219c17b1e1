"""`nerve bench shards`: each shard maker's milliseconds per image, against `nerve shards voc`'s.

Writes small trees in every dataset's real layout once (pipeline.bench.trees), then runs each
maker's samples through write_shards into a fresh folder `repeats` times, as `nerve shards` does
(progress off). Reported per maker: the best wall and the best process CPU milliseconds per image,
and the CPU figure over voc's (below 1: faster than voc). CPU time counts every thread of this
process; wall time also counts waiting on the disk. The machine's load average goes with them.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nerve_core.errors import ConfigError
from pipeline.bench.trees import LAYOUTS, write_trees
from pipeline.sources.shard_writer import write_shards
from pipeline.sources.skips import SkipLog

BASELINE = "voc"


@dataclass
class ShardsBenchConfig:
    output: str = "bench-results/shards"
    images: int = 200  # per dataset tree
    width: int = 500
    height: int = 375
    makers: list[str] = field(default_factory=lambda: ["voc", "ade", "cityscapes", "coco_stuff", "context", "coco"])
    repeats: int = 3  # the best run of each maker is reported
    per_shard: int = 1000  # as `nerve shards`' default
    seed: int = 0


def _check(cfg: ShardsBenchConfig) -> None:
    unknown = [m for m in cfg.makers if m not in LAYOUTS]
    if unknown:
        raise ConfigError(f"unknown makers {unknown}; expected some of {', '.join(LAYOUTS)}")
    if BASELINE not in cfg.makers:
        raise ConfigError(f"makers must include {BASELINE}: every ratio is to its CPU time")
    if cfg.images < 1 or cfg.repeats < 1 or cfg.width < 1 or cfg.height < 1:
        raise ConfigError("images, repeats, width and height must each be at least 1")


def time_maker(maker: str, root: Path, out: Path, per_shard: int) -> dict:
    """One run of `maker` on its tree into a fresh `out`: wall and CPU seconds, samples written, skips."""
    shutil.rmtree(out, ignore_errors=True)
    layout, skips = LAYOUTS[maker], SkipLog()
    wall, cpu = time.perf_counter(), time.process_time()
    samples, extra = layout.read(root, layout.split, skips)
    manifest = write_shards(samples, str(out), per_shard=per_shard, progress=False, manifest_extra=extra)
    return dict(wall_seconds=time.perf_counter() - wall, cpu_seconds=time.process_time() - cpu,
                images=manifest["num_samples"], skipped=len(skips.entries))


def run(cfg: ShardsBenchConfig) -> dict:
    _check(cfg)
    out = Path(cfg.output).expanduser()
    shutil.rmtree(out / "trees", ignore_errors=True)
    roots = write_trees(out / "trees", cfg.images, cfg.width, cfg.height, cfg.seed)
    makers = {}
    for maker in cfg.makers:
        runs = [time_maker(maker, roots[maker], out / "made" / maker, cfg.per_shard) for _ in range(cfg.repeats)]
        images = runs[0]["images"]
        if images != cfg.images or runs[0]["skipped"]:
            raise RuntimeError(f"{maker} wrote {images} of {cfg.images} images ({runs[0]['skipped']} skipped)")
        makers[maker] = dict(images=images, shards=str(out / "made" / maker), runs=runs,
                             wall_ms_per_image=1e3 * min(r["wall_seconds"] for r in runs) / images,
                             cpu_ms_per_image=1e3 * min(r["cpu_seconds"] for r in runs) / images)
    for result in makers.values():
        result["cpu_vs_voc"] = result["cpu_ms_per_image"] / makers[BASELINE]["cpu_ms_per_image"]
    return dict(benchmark="shards", config=asdict(cfg), makers=makers,
                load_average=os.getloadavg())  # 1/5/15-minute load at the end: wall figures need a quiet machine
