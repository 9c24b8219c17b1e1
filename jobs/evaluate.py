"""`nerve evaluate --config FILE output.dir=OUT`: one engine over several datasets, each a label job
in OUT/{dataset}/ (a rerun resumes each), their mIoU beside the papers' in OUT/evaluation.json,
evaluation.md and evaluation.png. Exit 1 unless every dataset's shards are all done."""
from __future__ import annotations

import sys

from omegaconf.errors import OmegaConfBaseException

from jobs.config import ConfigError, ParsedArgs, command, parse_argv, preset_names
from jobs.models import load_labeling_config
from jobs.outcome import report_failures, stop_if_fatal
from pipeline.evaluate.config import EvaluateJobConfig
from pipeline.job import label_part
from pipeline.report.model import fmt
from pipeline.storage import join

CONFIG_SCHEMA = EvaluateJobConfig


def dataset_jobs(cfg, args: ParsedArgs) -> dict:
    """dataset preset name -> its typed label job: the same command with `dataset=NAME` added (so
    the preset sits where `dataset=` always does: under --config FILE and key=value), reading the
    dataset's shards of evaluate.datasets and writing OUT/{dataset}/."""
    datasets = cfg.evaluate.datasets
    if not datasets:
        raise ConfigError("evaluate.datasets is empty: map dataset presets to their shards, "
                          "e.g. 'evaluate.datasets={voc21: /data/shards/voc-val}'")
    unknown = [name for name in datasets if name not in preset_names("dataset")]
    if unknown:
        raise ConfigError(f"unknown dataset preset {', '.join(map(repr, unknown))} in evaluate.datasets; "
                          f"available: {', '.join(preset_names('dataset'))}")
    if cfg.input.shards:
        raise ConfigError("nerve evaluate reads each dataset's shards from evaluate.datasets: leave input.shards unset")
    if not cfg.output.dir:
        raise ConfigError("output.dir is required (each dataset is labeled into output.dir/{dataset}/)")
    stray = [name for name in cfg.evaluate.engine if name not in datasets]
    if stray:
        raise ConfigError(f"evaluate.engine names {', '.join(map(repr, stray))}, not in evaluate.datasets")
    jobs = {}
    for name, shards in datasets.items():
        layered = load_labeling_config(EvaluateJobConfig, ParsedArgs(args.config_file, [*args.overrides, f"dataset={name}"],
                                                                     set(), []))
        try:
            jobs[name] = label_part(layered, {"input": {"shards": shards}, "output": {"dir": join(cfg.output.dir, name)},
                                              "engine": cfg.evaluate.engine.get(name) or {}})
        except OmegaConfBaseException as exc:
            raise ConfigError(f"evaluate.engine.{name}: {str(exc).splitlines()[0]}") from exc
    return jobs


@command
def main(argv: list[str]) -> int:
    from nerve_core.models.random_weights import random_weight_models
    from pipeline.evaluate.compare import dataset_row, evaluation
    from pipeline.evaluate.inputs import check_dataset_inputs
    from pipeline.evaluate.outputs import write_evaluation
    from pipeline.evaluate.papers import tables_for
    from pipeline.output.outputdir import OutputDir
    from pipeline.run.driver import SharedRaySession, run_label_job

    args = parse_argv(argv)
    cfg = load_labeling_config(EvaluateJobConfig, args)
    jobs = dataset_jobs(cfg, args)
    tables = tables_for(cfg.engine.name, cfg.evaluate.paper)
    check_dataset_inputs(jobs)
    rows, not_done = [], []
    with SharedRaySession() as session:
        for i, (name, job) in enumerate(jobs.items(), 1):
            print(f"[{i}/{len(jobs)}] {name} -> {job.output.dir}")
            result = run_label_job(job, session=session)
            stop_if_fatal(result, job.output.dir, more_follow=i < len(jobs))
            report_failures(result)
            if not result.ok:
                not_done.append(name)
            rows.append(dataset_row(name, OutputDir(job.output.dir).summary(), job.output.dir, result.ok, tables))
            print(f"  {rows[-1]['images']} images ({result.skipped} of {result.shards} shards done before), "
                  f"mIoU {fmt(rows[-1]['miou'])}, paper {fmt(rows[-1]['paper_miou'], 1)}")
    random_weights = sorted({m for job in jobs.values() for m in random_weight_models(job.engine)})
    record = evaluation(cfg.engine.name, cfg.models, random_weights, rows, tables)
    files = write_evaluation(cfg.output.dir, record)
    avg = record["average"]
    print(f"engine {cfg.engine.name}: mIoU {fmt(avg['miou'])} against the paper's {fmt(avg['paper_miou'])} "
          f"over {len(avg['datasets'])} datasets -> {', '.join(files)}")
    if not_done:
        print(f"NOT DONE: {', '.join(not_done)} have shards that are not done; rerun the same command to retry them "
              f"({cfg.output.dir}/{{dataset}}/failed_shards.json lists why)", file=sys.stderr)
    return 1 if not_done else 0
