"""`nerve score output.dir=OUT [input.shards=...]`: re-score an output directory, rewrite summary.json."""
from __future__ import annotations

from jobs.config import command, load_config, no_positionals, parse_argv
from pipeline.config import ScoreJobConfig

CONFIG_SCHEMA = ScoreJobConfig


@command
def main(argv: list[str]) -> int:
    from pipeline.score.rescore import rescore

    args = parse_argv(argv)
    no_positionals(args)
    cfg = load_config(ScoreJobConfig, args.overrides, args.config_file)
    rescored = rescore(cfg.output.dir, cfg.input.shards)
    summary = rescored.summary
    if summary["miou"] is None:
        print(f"{summary['num_images']} images, no ground truth to score")
    else:
        print(f"mIoU {summary['miou']:.2f}  aAcc {summary['aacc']:.2f}  over {summary['gt_images']} images")
        for name, iou in summary["per_class_iou"].items():
            print(f"  {name:>24s}  {'-' if iou is None else f'{iou:.2f}'}")
    if rescored.unscored:
        print(f"not scored, ground truth does not decode: {len(rescored.unscored)} images")
        for entry in rescored.unscored[:20]:
            print(f"  - {entry['shard']}/{entry['key']}: {entry['reason']}")
        if len(rescored.unscored) > 20:
            print(f"  ... and {len(rescored.unscored) - 20} more")
    return 0
