"""`nerve verify output.dir=OUT [input.shards=...] [--json]`: every input sample accounted for once."""
from __future__ import annotations

from jobs.config import ConfigError, fail, load_config, parse_argv
from pipeline.config import VerifyJobConfig


def main(argv: list[str]) -> int:
    from pipeline.verify import report_json, verify_output

    try:
        args = parse_argv(argv, flags=("--json",))
        cfg = load_config(VerifyJobConfig, args.overrides, args.config_file)
        report = verify_output(cfg.output.dir, cfg.input.shards)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        return fail(str(exc))
    print(report_json(report) if "--json" in args.flags else report.format())
    return 0 if report.ok else 1
