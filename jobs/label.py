"""`nerve label`: label WebDataset shards with the engine on Ray; exit 1 unless every shard is done."""
from __future__ import annotations

import sys

from jobs.config import command, parse_argv
from jobs.models import load_labeling_config
from jobs.outcome import report_failures, stop_if_fatal
from pipeline.config import LabelJobConfig
from pipeline.output.walk_stats import walk_warning

CONFIG_SCHEMA = LabelJobConfig


@command
def main(argv: list[str]) -> int:
    from pipeline.run.driver import run_label_job

    cfg = load_labeling_config(LabelJobConfig, parse_argv(argv))
    result = run_label_job(cfg)
    stop_if_fatal(result, cfg.output.dir)
    s = result.summary
    miou = "n/a" if s.get("miou") is None else f"{s['miou']:.2f}"
    print(f"labeled {s['num_images']} images in {s['num_shards']} shards ({result.skipped} skipped this run), "
          f"{s['num_errors']} errors, mIoU {miou} -> {cfg.output.dir}")
    if not result.ok:
        print(f"NOT DONE: {len(result.not_done)} of {result.shards} shards are not done; rerun the same command "
              f"to retry them (failed_shards.json lists why)", file=sys.stderr)
    warning = walk_warning(s.get("walk"), cfg.engine.refine)
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr)
    report_failures(result)
    return 0 if result.ok else 1
