"""OUT/summary.json (dataset-level figures: docs/method.md, section 13) from the run index's totals."""
from __future__ import annotations

from pipeline.output.outputdir import OutputDir
from pipeline.output.run_index import RunIndex


def write_summary(out: OutputDir, class_names: list[str], fingerprint: dict, run: dict | None = None,
                  index: RunIndex | None = None) -> dict:
    """Summary over every shard with stats in the directory (earlier runs included; partial ones
    counted and listed); `run` = this run's figures; `index`: the run index when the caller holds
    it, brought in line with the stats files already (else it is loaded, and reconciled, here)."""
    index = index or out.index(len(class_names), writable=True)
    summary = index.totals().summary(class_names, fingerprint, list(index.partial))
    if run is not None:
        summary["last_run"] = run
    out.write_summary(summary)
    return summary
