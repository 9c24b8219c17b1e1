"""Benchmark output: results as JSON, a PNG plot and a plain-text table (also printed).

One entry point, `write_report(results, cfg, output_dir)`, dispatching on `results["benchmark"]`;
each benchmark has one table function and one plot function (report_models.py, report_host.py),
so the numbers a reader sees in the terminal, in the JSON and in the figure come from the same rows.
"""
from __future__ import annotations

import json
from pathlib import Path

from pipeline.bench.report_driver import driver_plot, driver_table
from pipeline.bench.report_host import pipeline_plot, pipeline_table, shards_plot, shards_table
from pipeline.bench.report_models import (
    engine_plot,
    engine_table,
    gpu_plot,
    gpu_table,
    refine_plot,
    refine_table,
    sweep_plot,
    sweep_table,
)
from pipeline.bench.report_store import store_plot, store_table

REPORTS = {
    "refine": (refine_table, refine_plot),
    "engine": (engine_table, engine_plot),
    "pipeline": (pipeline_table, pipeline_plot),
    "sweep": (sweep_table, sweep_plot),
    "gpu": (gpu_table, gpu_plot),
    "shards": (shards_table, shards_plot),
    "store": (store_table, store_plot),
    "driver": (driver_table, driver_plot),
}
TABLE_SUFFIX = {"gpu": ".md"}  # the others are plain-text tables


def write_report(results: dict, cfg, output_dir) -> dict[str, Path]:
    """Write {benchmark}.json, {benchmark}.png and {benchmark}.txt (.md for gpu) under `output_dir`; print
    the table. `cfg`: the typed config the results were measured with (the JSON keeps it as `config`)."""
    name = results["benchmark"]
    table_fn, plot_fn = REPORTS[name]
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    suffix = TABLE_SUFFIX.get(name, ".txt")
    paths = {"json": out / f"{name}.json", "png": out / f"{name}.png", "table": out / f"{name}{suffix}"}
    paths["json"].write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    table = table_fn(results, cfg)
    paths["table"].write_text(table + "\n", encoding="utf-8")
    plot_fn(results, cfg, paths["png"])
    print(table)
    return paths
