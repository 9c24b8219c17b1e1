"""`nerve bench refine|engine|pipeline|gpu|sweep|shards|store|driver [--config FILE] [key=value ...]`: the
performance harness (sweep: the walk's robustness over planted problems; store: a label job on a slow
object store; driver: the label job's driver at scale, simulated).

Every sweep dimension is a config key, so the defaults stay small enough for a laptop and the
full sweeps are one command line away (docs/benchmarks.md). Results go to `output=DIR` as
{benchmark}.json, {benchmark}.png and {benchmark}.txt (gpu: .md); the table is also printed.
"""
from __future__ import annotations

import importlib
from functools import partial

from jobs.config import ConfigError, command, load_object, parse_argv

# subcommand -> (module, config class); each module exposes `run(cfg) -> dict`.
BENCHMARKS = {
    "refine": ("pipeline.bench.refine", "RefineBenchConfig"),
    "engine": ("pipeline.bench.engine", "EngineBenchConfig"),
    "pipeline": ("pipeline.bench.pipeline", "PipelineBenchConfig"),
    "sweep": ("pipeline.bench.sweep", "SweepBenchConfig"),  # robustness of the walk's forms and settings
    "gpu": ("pipeline.bench.gpu", "GpuBenchConfig"),
    "shards": ("pipeline.bench.shards", "ShardsBenchConfig"),  # every shard maker's ms per image against voc's
    "store": ("pipeline.bench.store", "StoreBenchConfig"),  # a label job and its reruns on a slow object store
    "driver": ("pipeline.bench.driver", "DriverBenchConfig"),  # the driver at scale: simulated actors and store
}
USAGE = "usage: nerve bench {" + ",".join(BENCHMARKS) + "} [--config FILE] [key=value ...]"


def config_class(benchmark: str):
    """The typed config schema of one benchmark (`refine`, `engine` or `pipeline`)."""
    module_name, schema_name = BENCHMARKS[benchmark]
    return getattr(importlib.import_module(module_name), schema_name)


# For `nerve bench SUB --help`: schemas load on demand (their modules import torch).
SUBCOMMANDS = {
    "refine": (partial(config_class, "refine"), "the refinement methods alone: seconds and peak memory per N, K"),
    "engine": (partial(config_class, "engine"), "the engine per stage (CLIP, VAE, UNet, refine, upsample) and batch size"),
    "pipeline": (partial(config_class, "pipeline"), "nerve label end to end against its engine alone on the same images"),
    "shards": (partial(config_class, "shards"), "every nerve shards maker's wall and CPU ms per image, against voc's"),
    "store": (partial(config_class, "store"), "a label job on a slow object store (moto + a delaying proxy), then its reruns"),
    "driver": (partial(config_class, "driver"), "the label job's driver at scale: simulated actors, a store with latency"),
}


@command
def main(argv: list[str]) -> int:
    args = parse_argv(argv)
    if len(args.positionals) != 1 or args.positionals[0] not in BENCHMARKS:
        raise ConfigError(f"bench needs one of {', '.join(BENCHMARKS)}; {USAGE}")
    schema = config_class(args.positionals[0])
    cfg = load_object(schema, args.overrides, args.config_file)
    from pipeline.bench.report import write_report

    results = importlib.import_module(schema.__module__).run(cfg)
    paths = write_report(results, cfg, cfg.output)
    print("\nwrote " + ", ".join(str(p) for p in paths.values()))
    return 0
