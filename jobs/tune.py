"""`nerve tune`: pick refinement, upsampling and background settings on labelled shards; exit 1
unless every shard is cached and every trial finished."""
from __future__ import annotations

import sys

from jobs.config import command, parse_argv
from jobs.models import load_labeling_config
from pipeline.tune.config import TuneJobConfig

CONFIG_SCHEMA = TuneJobConfig


@command
def main(argv: list[str]) -> int:
    from pipeline.tune.job import run_tune_job

    cfg = load_labeling_config(TuneJobConfig, parse_argv(argv))
    result = run_tune_job(cfg)
    cache = result.cache.summary
    print(f"cached {cache['images']} images ({cache['bytes_per_image'] / 1e6:.2f} MB each) in {cache['shards']} shards "
          f"({result.cache.skipped} already cached)" if cache["images"] else "cached no image with ground truth")
    if result.cache.not_done:
        print(f"NOT DONE: shards {result.cache.not_done} are not cached; rerun the same command to retry them "
              f"(cache/failed_shards.json lists why)", file=sys.stderr)
        return 1
    if result.rows:
        best = result.rows[0]
        print(f"{len(result.rows)} trials ({result.search.reused} finished before); best mIoU {best['miou']:.2f} "
              f"with {best['settings']} -> {cfg.output.dir}/tune/best.yaml")
    for error in result.search.errors:
        print(f"failed trial: {error}", file=sys.stderr)
    return 0 if result.ok else 1
