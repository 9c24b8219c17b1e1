"""`nerve label`: label WebDataset shards with the engine on Ray; exit 1 when a shard failed."""
from __future__ import annotations

import sys

from jobs.config import ConfigError, fail, load_config, parse_argv
from pipeline.config import LabelJobConfig


def main(argv: list[str]) -> int:
    from pipeline.driver import run_label_job
    from pipeline.outputdir import OutputConflict

    try:
        args = parse_argv(argv)
        if args.positionals:
            raise ConfigError(f"unexpected arguments {args.positionals}; use key=value")
        cfg = load_config(LabelJobConfig, args.overrides, args.config_file)
        result = run_label_job(cfg)
    except (ConfigError, OutputConflict, ValueError, FileNotFoundError) as exc:
        return fail(str(exc))
    s = result.summary
    miou = "n/a" if s.get("miou") is None else f"{s['miou']:.2f}"
    print(f"labeled {s['num_images']} images in {s['num_shards']} shards ({result.skipped} skipped this run), "
          f"{s['num_errors']} errors, mIoU {miou} -> {cfg.output.dir}")
    for failure in result.failed:
        print(f"failed shard {failure['shard']}: {failure['reason']}", file=sys.stderr)
    return 0 if result.ok else 1
