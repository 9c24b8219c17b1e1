"""`nerve label`: label WebDataset shards with the engine on Ray; exit 1 unless every shard is done."""
from __future__ import annotations

import sys

from jobs.config import ConfigError, fail, load_config, parse_argv
from pipeline.config import LabelJobConfig
from pipeline.walk_stats import walk_warning


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
    except OSError as exc:  # e.g. an output directory that cannot be written at all
        return fail(f"cannot write the outputs: {type(exc).__name__}: {exc}")
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
    for failure in result.failed:
        print(f"failed shard {failure['shard']} after {failure['attempts']} attempts: {failure['reason']}",
              file=sys.stderr)
    return 0 if result.ok else 1
