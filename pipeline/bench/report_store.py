"""`nerve bench store`'s table and plot: each step's wall seconds and requests to the store, by kind."""
from __future__ import annotations

from pathlib import Path

from pipeline.bench.report_host import bar_plot
from pipeline.bench.tables import format_table

KINDS = ("LIST", "GET", "HEAD", "PUT", "POST", "DELETE")


def store_table(results: dict, cfg) -> str:
    rows = [[step, f["seconds"], *(f["requests"].get(kind, 0) for kind in KINDS)] for step, f in results["steps"].items()]
    return "\n".join([
        f"{cfg.shards} one-sample shards on S3 (moto); the reruns with {cfg.delay_ms:g} ms added to every request",
        format_table(["step", "seconds", *KINDS], rows),
        f"rerun with every shard done: {results['rerun_skipped']} skipped, {results['rerun_labeled']} labeled",
        f"rerun after removing {len(results['removed'])} markers relabeled exactly those: {results['relabeled_exactly_removed']}",
        "load average: " + " ".join(f"{v:.2f}" for v in results["load_average"])])


def store_plot(results: dict, cfg, path: Path) -> None:
    steps = list(results["steps"])
    bar_plot(path, steps, [results["steps"][s]["seconds"] for s in steps], "seconds",
             f"{cfg.shards} shards, {cfg.delay_ms:g} ms per request", horizontal=True)
