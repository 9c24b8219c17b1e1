"""OUT/evaluation.json, evaluation.md (the table) and evaluation.png (ours beside the paper's, per
dataset), written atomically on a local path or an fsspec URL."""
from __future__ import annotations

from pipeline.output.writers import write_json
from pipeline.report.chart import paired_bar_chart
from pipeline.report.model import EVALUATION_FILES, fmt, random_weights_note
from pipeline.storage import atomic_write, filesystem, join


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


def render_markdown(record: dict) -> str:
    lines = [f"# nerve evaluate: engine `{record['engine']}`", ""]
    warning = random_weights_note(record.get("random_weights"))  # absent in records of release 0.1.0
    if warning:
        lines += [f"> {warning}", ""]
    for t in record["paper_tables"]:
        lines.append(f"- paper table `{t['name']}`: {t['paper']}, {t['table']}")
    if not record["paper_tables"]:
        lines.append(f"- no paper table belongs to engine `{record['engine']}` (configs/paper_tables/engines.yaml; "
                     "`evaluate.paper=NAME` names one)")
    lines += ["", "| dataset | images | errors | mIoU | paper | delta | done |", "|---|---:|---:|---:|---:|---:|---|"]
    for r in record["rows"]:
        lines.append(f"| {r['dataset']} | {r['images']} | {r['errors']} | {fmt(r['miou'])} | {fmt(r['paper_miou'], 1)} "
                     f"| {_signed(r['delta'])} | {'yes' if r['done'] else 'NO'} |")
    avg = record["average"]
    lines.append(f"| average over {len(avg['datasets'])} | | | {fmt(avg['miou'])} | {fmt(avg['paper_miou'])} "
                 f"| {_signed(avg['delta'])} | |")
    lines += ["", "The average is over the datasets that have both figures: "
              + (", ".join(avg["datasets"]) or "none") + "."]
    return "\n".join(lines) + "\n"


def chart(record: dict) -> bytes:
    rows = record["rows"]
    title = f"{record['engine']}" + (" (RANDOM weights)" if record.get("random_weights") else "")
    return paired_bar_chart([r["dataset"] for r in rows], [r["miou"] for r in rows],
                            [r["paper_miou"] for r in rows], "paper", title)


def write_evaluation(out_url: str, record: dict) -> list[str]:
    """The three files under `out_url`; returns their paths."""
    fs, root = filesystem(out_url)
    fs.makedirs(root, exist_ok=True)
    json_path, md_path, png_path = (join(root, name) for name in EVALUATION_FILES)
    write_json(fs, json_path, record)
    atomic_write(fs, md_path, render_markdown(record).encode("utf-8"))
    atomic_write(fs, png_path, chart(record))
    return [join(str(out_url), name) for name in EVALUATION_FILES]
