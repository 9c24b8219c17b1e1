"""`nerve report output.dir=OUT [to=DIR] [input.shards=...] [limit=N]`: look at a run's labels.

Writes a folder whose index.html opens from disk: the run at a glance, every image (or the `limit`
worst) with its mask overlaid beside the ground truth, worst first, filterable by class and score,
and the error rows. OUT may be any label or regress output directory, or an evaluation's directory
of runs (one per dataset), local or on an object store; the report is written locally.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.config import ConfigError, command, load_object, no_positionals, parse_argv


@dataclass
class ReportRun:
    dir: str = ""  # OUT: a label, regress or evaluate output directory, local or a URL (s3://, gs://, ...)


@dataclass
class ReportInput:
    # shards to draw the images and ground truth from (a path, URL, brace pattern, directory or list);
    # None = the shards OUT/config.yaml records. Typed Any because omegaconf has no str-or-list type.
    shards: Any = None


@dataclass
class ReportJobConfig:
    output: ReportRun = field(default_factory=ReportRun)
    to: str = ""  # report folder (local); "" = OUT/report for a local OUT
    input: ReportInput = field(default_factory=ReportInput)
    limit: int = 0  # > 0: only the `limit` worst images in the gallery
    progress: bool = True


CONFIG_SCHEMA = ReportJobConfig


def report_folder(cfg: ReportJobConfig) -> Path:
    if cfg.to:
        return Path(cfg.to)
    if "://" in cfg.output.dir:
        raise ConfigError("output.dir is remote: set to=DIR to a local directory for the report")
    return Path(cfg.output.dir) / "report"


@command
def main(argv: list[str]) -> int:
    from pipeline.output.outputdir import NotAnOutputDir, OutputDir
    from pipeline.report.build import run_dirs, write_evaluation_report, write_run_report

    args = parse_argv(argv)
    no_positionals(args)
    cfg = load_object(ReportJobConfig, args.overrides, args.config_file)
    if cfg.limit < 0:
        raise ConfigError(f"limit must be 0 (every image) or more, not {cfg.limit}")
    folder = report_folder(cfg)
    out = OutputDir(cfg.output.dir)
    if not out.fs.exists(out.root):
        raise NotAnOutputDir(f"{cfg.output.dir} does not exist")
    if out.record() is not None:
        path, counts, _ = write_run_report(cfg.output.dir, folder, cfg.input.shards, cfg.limit, cfg.progress)
        print(f"report: {path}  ({counts['made']} thumbnails made, {counts['reused']} reused)")
        return 0
    names = run_dirs(out)
    if not names:
        out.existing_record()  # raises: not an output directory
    if cfg.input.shards:
        raise ConfigError("input.shards names one run's shards; the runs of an evaluation use the shards each recorded")
    path = write_evaluation_report(cfg.output.dir, names, folder, cfg.limit, cfg.progress)
    print(f"report: {path}  ({len(names)} runs: {', '.join(names)})")
    return 0
