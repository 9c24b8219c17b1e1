"""`nerve score output.dir=OUT [input.shards=...]`: re-score an output directory, rewrite summary.json."""
from __future__ import annotations

from jobs.config import ConfigError, fail, load_config, parse_argv
from pipeline.config import ScoreJobConfig


def main(argv: list[str]) -> int:
    from pipeline.rescore import rescore

    try:
        args = parse_argv(argv)
        cfg = load_config(ScoreJobConfig, args.overrides, args.config_file)
        summary = rescore(cfg.output.dir, cfg.input.shards)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        return fail(str(exc))
    if summary["miou"] is None:
        print(f"{summary['num_images']} images, no ground truth to score")
    else:
        print(f"mIoU {summary['miou']:.2f}  aAcc {summary['aacc']:.2f}  over {summary['gt_images']} images")
        for name, iou in summary["per_class_iou"].items():
            print(f"  {name:>24s}  {'-' if iou is None else f'{iou:.2f}'}")
    return 0
