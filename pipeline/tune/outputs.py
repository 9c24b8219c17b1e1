"""OUT/tune/leaderboard.csv and OUT/tune/best.yaml from the finished trials' records."""
from __future__ import annotations

import csv
import io
import json

import yaml

from pipeline.storage import atomic_write, join
from pipeline.tune.space import engine_with

COLUMNS = ("miou", "miou_check", "seconds")


def ranked(records: list[dict], space) -> list[dict]:
    """Best mIoU on the tune part first; ties in the grid's order."""
    def order(r):
        return -r["miou"], [list(values).index(r["settings"][k]) for k, values in zip(space.keys, space.values)]

    return sorted(records, key=order)


def _cell(value) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def leaderboard_csv(records: list[dict], keys) -> str:
    """One row per trial: its key, every searched key's value, mIoU (tune part), mIoU (check part), seconds."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["trial", *keys, *COLUMNS])
    for r in records:
        writer.writerow([r["trial"], *(_cell(r["settings"][k]) for k in keys), *(_cell(r[c]) for c in COLUMNS)])
    return out.getvalue()


def best_config(best: dict, engine: dict, dataset: dict, trials: int) -> str:
    """A `nerve label --config` file: the full engine config with the best settings, and the dataset."""
    check = "none" if best["miou_check"] is None else f"{best['miou_check']:.2f}"
    header = (f"# nerve tune: best of {trials} trials (trial {best['trial']}): mIoU {best['miou']:.2f} on the tune part "
              f"({best['images']['tune']} images), {check} on the check part\n")
    body = yaml.safe_dump({"engine": engine_with(engine, best["settings"]), "dataset": dataset}, sort_keys=False)
    return header + body


def write_outputs(fs, root: str, records: list[dict], space, engine: dict, dataset: dict) -> list[dict]:
    """leaderboard.csv and best.yaml under `root`; returns the ranked records."""
    rows = ranked(records, space)
    atomic_write(fs, join(root, "leaderboard.csv"), leaderboard_csv(rows, space.keys).encode("utf-8"))
    if rows:
        atomic_write(fs, join(root, "best.yaml"), best_config(rows[0], engine, dataset, len(rows)).encode("utf-8"))
    return rows
