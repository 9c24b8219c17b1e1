"""evaluation.json's content: one row per dataset, read back from that dataset's summary.json, beside
the paper's figure, and the average over the datasets that both report."""
from __future__ import annotations

from pipeline.evaluate.papers import PaperTable, paper_figure


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _delta(ours: float | None, paper: float | None) -> float | None:
    return None if ours is None or paper is None else round(ours - paper, 2)


def dataset_row(dataset: str, summary: dict, out_dir: str, done: bool, tables: list[PaperTable]) -> dict:
    """One row: `miou` is the dataset's summary.json mIoU exactly (null without ground truth)."""
    paper, table = paper_figure(tables, dataset)
    return {"dataset": dataset, "images": summary["num_images"], "errors": summary["num_errors"],
            "miou": summary["miou"], "paper_miou": paper, "delta": _delta(summary["miou"], paper),
            "paper_table": table, "done": done, "output": out_dir}


def evaluation(engine: str, models: str, random_weights: list[str], rows: list[dict], tables: list[PaperTable]) -> dict:
    """The whole record: the engine, the `models=` switch and the models whose files hold random
    weights (nerve_core/models/random_weights.py), the tables compared with, the rows and their average."""
    both = [r for r in rows if r["miou"] is not None and r["paper_miou"] is not None]
    ours, paper = _mean([r["miou"] for r in both]), _mean([r["paper_miou"] for r in both])
    return {
        "engine": engine,
        "models": models,
        "random_weights": random_weights,
        "paper_tables": [{"name": t.name, "paper": t.paper, "table": t.table, "average": t.average} for t in tables],
        "rows": rows,
        "average": {"datasets": [r["dataset"] for r in both], "miou": ours, "paper_miou": paper,
                    "delta": _delta(ours, paper)},
    }
