"""`nerve verify output.dir=OUT [input.shards=...] [--json]`: every input sample accounted for once."""
from __future__ import annotations

from jobs.config import command, load_config, no_positionals, parse_argv
from pipeline.config import VerifyJobConfig

CONFIG_SCHEMA = VerifyJobConfig


@command
def main(argv: list[str]) -> int:
    from pipeline.score.verify import report_json, verify_output

    args = parse_argv(argv, flags=("--json",))
    no_positionals(args)
    cfg = load_config(VerifyJobConfig, args.overrides, args.config_file)
    report = verify_output(cfg.output.dir, cfg.input.shards)
    print(report_json(report) if "--json" in args.flags else report.format())
    return 0 if report.ok else 1
