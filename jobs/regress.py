"""`nerve regress [--config FILE] [--update-baseline] baseline=FILE key=value ...`: the nightly mIoU check.

Labels and scores a pinned shard list (a label job: every label-job key applies), compares the
figures with a baseline JSON, writes REPORT/report.md, report.html (+ images/), report.json and
junit.xml, and exits 1 on a regression (0 = pass, 2 = configuration error). `--update-baseline`
accepts this run's figures as the new baseline (and exits 0 when the run itself succeeded).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from jobs.config import ConfigError, command, parse_argv
from jobs.models import load_labeling_config
from jobs.outcome import JobStopped, report_failures, stop_if_fatal
from pipeline.config import LabelJobConfig, OutputConfig
from pipeline.job import label_part

UPDATE_FLAG = "--update-baseline"


@dataclass(frozen=True)
class ToleranceConfig:
    miou: float = 0.5  # points (of percent) the mIoU may fall below the baseline
    per_class: float = 2.0  # points any one class's IoU may fall (small classes are noisier)
    errors: int = 0  # error rows allowed beyond the baseline's


@dataclass(frozen=True)
class RegressJobConfig(LabelJobConfig):
    # A regression run measures afresh: earlier outputs in output.dir are cleared, not resumed.
    output: OutputConfig = field(default_factory=lambda: OutputConfig(mode="overwrite"))
    baseline: str = ""  # baseline JSON (local path); written by --update-baseline
    # no baseline yet: accept this run as the baseline (as --update-baseline would) instead of exit 2
    record_missing_baseline: bool = False
    report: str = ""  # report directory (local); "" = <output.dir>/report
    tolerance: ToleranceConfig = field(default_factory=ToleranceConfig)
    samples: int = 8  # images on the report's contact sheet (image, GT, prediction)
    # > 0: input.shards is a directory; when it holds no shards yet, this many synthetic demo images
    # (with ground truth) are written there first
    demo_shards: int = 0


CONFIG_SCHEMA = RegressJobConfig


def report_dir(cfg) -> Path:
    if cfg.report:
        return Path(cfg.report)
    if "://" in cfg.output.dir:
        raise ConfigError("output.dir is remote: set report=DIR to a local directory")
    return Path(cfg.output.dir) / "report"


def make_demo_input(cfg) -> None:
    """Write the demo shards that cfg.demo_shards asks for, unless input.shards already holds shards."""
    from pipeline.read.shardlist import SHARD_SUFFIXES
    from pipeline.sources.shard_writer import write_shards
    from pipeline.sources.synthetic import demo_samples

    folder = Path(str(cfg.input.shards))
    if folder.is_dir() and any(p.name.endswith(SHARD_SUFFIXES) for p in folder.iterdir()):
        return
    write_shards(demo_samples(cfg.demo_shards, seed=0), folder, per_shard=4, progress=False)


@command
def main(argv: list[str]) -> int:
    from pipeline.output.walk_stats import walk_warning
    from pipeline.read.shardlist import expand_shards, shard_id
    from pipeline.report.baseline import Check, baseline_from_summary, compare, read_baseline, write_baseline
    from pipeline.report.model import RunReport
    from pipeline.report.write import write_report
    from pipeline.run.driver import run_label_job

    args = parse_argv(argv, flags=(UPDATE_FLAG,))
    update = UPDATE_FLAG in args.flags
    cfg = load_labeling_config(RegressJobConfig, args)
    if not cfg.baseline:
        raise ConfigError("baseline=FILE is required (the JSON that --update-baseline writes)")
    baseline = read_baseline(cfg.baseline) if Path(cfg.baseline).is_file() else None
    if baseline is None and cfg.record_missing_baseline:
        update = True
    if baseline is None and not update:
        raise ConfigError(f"no baseline at {cfg.baseline}; run once with {UPDATE_FLAG} to record one")
    folder = report_dir(cfg)
    if cfg.demo_shards > 0:
        make_demo_input(cfg)
    start = time.perf_counter()
    result = run_label_job(label_part(cfg))
    stop_if_fatal(result, cfg.output.dir)
    summary = result.summary
    if summary.get("miou") is None:
        report_failures(result)
        if result.failed:
            raise JobStopped(f"no ground truth was scored because {len(result.failed)} of {result.shards} shards "
                             f"failed (listed above and in {cfg.output.dir}/failed_shards.json)")
        raise ConfigError("no ground truth was scored: nerve regress needs shards with seg.png")
    shards = [shard_id(u) for u in expand_shards(cfg.input.shards)]
    report = RunReport(f"nerve regress: {cfg.engine.name} on {cfg.dataset.name}", cfg.output.dir, summary,
                       baseline=baseline, baseline_path=cfg.baseline)
    if baseline is not None:
        report.checks = [Check("shards_done", result.ok, len(result.failed), 0, 0,
                               f"{len(result.failed)} of {result.shards} shards failed")]
        report.checks += compare(summary, baseline, shards, miou_tolerance=cfg.tolerance.miou,
                                 class_tolerance=cfg.tolerance.per_class, error_tolerance=cfg.tolerance.errors)
        if baseline.get("fingerprint") != summary.get("fingerprint"):
            report.notes.append(f"The configuration fingerprint differs from the baseline's "
                                f"({baseline.get('fingerprint')} -> {summary.get('fingerprint')}).")
    warning = walk_warning(summary.get("walk"), cfg.engine.refine)
    if warning:
        report.notes.append(warning)
    accepted = update and result.ok
    if accepted:
        write_baseline(cfg.baseline, baseline_from_summary(summary, shards, cfg.engine.name))
        report.notes.append(f"This run was accepted as the new baseline ({cfg.baseline}).")
    elif update:
        report.notes.append("Shards failed, so the baseline was NOT updated.")
    files = write_report(report, folder, cfg.samples, time.perf_counter() - start, cfg.progress)
    _print(report, files)
    report_failures(result)
    if update:
        return 0 if accepted else 1
    return 1 if report.failures else 0


def _print(report, files: dict) -> None:
    s = report.summary
    print(f"regress {report.verdict}: mIoU {s['miou']:.2f} over {s['num_images']} images "
          f"({s['num_errors']} errors)")
    for check in report.failures:
        print(f"  FAIL {check.name}: {check.message}", file=sys.stderr)
    for note in report.notes:
        print(f"  {note}")
    for kind, path in files.items():
        print(f"  {kind:>8s}: {path}")
