"""The report as Markdown (report.md): readable in a terminal, a CI log or a pull request."""
from __future__ import annotations

from pipeline.report.model import RunReport, fmt
from pipeline.report.palette import hex_colour
from pipeline.report.walk_section import head_rows, walk_rows


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def render_markdown(report: RunReport) -> str:
    s = report.summary
    lines = [f"# {report.title}", "", f"**Result: {report.verdict}**", ""]
    lines += [f"> {note}" for note in report.notes] + ([""] if report.notes else [])
    lines += [
        f"- output: `{report.out_dir}`",
        f"- images: {s['num_images']} ({s['num_errors']} errors) in {s['num_shards']} shards",
        f"- mIoU: {fmt(s['miou'])}  aAcc: {fmt(s.get('aacc'))}",
        f"- fingerprint: `{s.get('fingerprint')}`",
    ]
    if report.baseline is not None:
        b = report.baseline
        lines.append(f"- baseline: `{report.baseline_path}` (mIoU {fmt(b['miou'])}, {b['created']}, "
                     f"fingerprint `{b.get('fingerprint')}`)")
    if report.checks is not None:
        lines += ["", "## Checks", "", "| check | result | detail |", "|---|---|---|"]
        lines += [f"| {_cell(c.name)} | {'ok' if c.passed else 'FAIL'} | {_cell(c.message)} |" for c in report.checks]
    lines += ["", "## Per-class IoU (%)", "", "| class | IoU | baseline | change |", "|---|---:|---:|---:|"]
    for name, iou, base in report.class_rows():
        change = f"{iou - base:+.2f}" if iou is not None and base is not None else ""
        lines.append(f"| {_cell(name)} | {fmt(iou)} | {fmt(base)} | {change} |")
    if walk_rows(s):
        lines += ["", f"## Random walk ({s['walk']['images']} images)", "", "| figure | mean | p5 | p95 |", "|---|---:|---:|---:|"]
        lines += [f"| {name} | {mean:.3f} | {p5:.3f} | {p95:.3f} |" for name, mean, p5, p95 in walk_rows(s)]
        lines += ["", "| head | mean weight | negative cosines | global rows kept |", "|---:|---:|---:|---:|"]
        lines += [f"| {h} | {w:.3f} | {neg:.3f} | {kept:.3f} |" for h, w, neg, kept in head_rows(s)]
    if report.sheet:
        lines += ["", "## Samples (image, ground truth, prediction)", "", "| sample | image | GT | prediction |",
                  "|---|---|---|---|"]
        for e in report.sheet:
            gt = f"![GT]({e.gt})" if e.gt else "no GT"
            label = f"{e.shard}/{e.key}<br>mIoU {fmt(e.miou)}"
            lines.append(f"| {_cell(label)} | ![image]({e.image}) | {gt} | ![prediction]({e.prediction}) |")
    lines += ["", "## Colours", ""]
    if report.legend_image:
        lines += [f"![colour legend]({report.legend_image})", ""]
    lines += ["| class | colour |", "|---|---|"]
    lines += [f"| {_cell(name)} | `{hex_colour(rgb)}` |" for name, rgb in report.legend()]
    return "\n".join(lines) + "\n"
