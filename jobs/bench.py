"""`nerve bench refine|engine|pipeline|gpu [--config FILE] [key=value ...]`: the performance harness.

Every sweep dimension is a config key, so the defaults stay small enough for a laptop and the
full sweeps are one command line away (docs/benchmarks.md). Results go to `output=DIR` as
{benchmark}.json, {benchmark}.png and {benchmark}.txt (gpu: .md); the table is also printed.
"""
from __future__ import annotations

import importlib

from omegaconf import OmegaConf

from jobs.config import ConfigError, fail, load_config, parse_argv

# subcommand -> (module, config class); each module exposes `run(cfg) -> dict`.
BENCHMARKS = {
    "refine": ("pipeline.bench.refine", "RefineBenchConfig"),
    "engine": ("pipeline.bench.engine", "EngineBenchConfig"),
    "pipeline": ("pipeline.bench.pipeline", "PipelineBenchConfig"),
    "gpu": ("pipeline.bench.gpu", "GpuBenchConfig"),
}
USAGE = "usage: nerve bench {" + ",".join(BENCHMARKS) + "} [--config FILE] [key=value ...]"


def config_class(benchmark: str):
    """The typed config schema of one benchmark (`refine`, `engine` or `pipeline`)."""
    module_name, schema_name = BENCHMARKS[benchmark]
    return getattr(importlib.import_module(module_name), schema_name)


def main(argv: list[str]) -> int:
    try:
        args = parse_argv(argv)
    except ConfigError as err:
        return fail(str(err))
    if len(args.positionals) != 1 or args.positionals[0] not in BENCHMARKS:
        return fail(f"bench needs one of {', '.join(BENCHMARKS)}\n{USAGE}")
    schema = config_class(args.positionals[0])
    try:
        cfg = OmegaConf.to_object(load_config(schema, args.overrides, args.config_file))
    except ConfigError as err:
        return fail(str(err))
    from pipeline.bench.report import write_report

    results = importlib.import_module(schema.__module__).run(cfg)
    paths = write_report(results, cfg.output)
    print("\nwrote " + ", ".join(str(p) for p in paths.values()))
    return 0
