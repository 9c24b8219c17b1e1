"""Write every report file into one local directory."""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

from pipeline.report.build import attach_gallery
from pipeline.report.contact_sheet import write_contact_sheet
from pipeline.report.html import render_html
from pipeline.report.junit import render_junit
from pipeline.report.legend import write_legend_png
from pipeline.report.markdown import render_markdown
from pipeline.report.model import RunReport

LEGEND_FILE = "images/legend.png"


def write_report(report: RunReport, report_dir, samples: int = 8, seconds: float = 0.0,
                 progress: bool = False) -> dict[str, Path]:
    """report.md (+ images/: its contact sheet), report.html (+ the gallery: data.js, gallery.js, thumbs/),
    report.json, and junit.xml when a baseline was compared."""
    folder = Path(report_dir)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder / "images", ignore_errors=True)  # a rerun's sheet must not show stale images
    report.sheet = write_contact_sheet(report.out_dir, folder, samples, report.notes)
    attach_gallery(report, folder, progress=progress)
    report.legend_image = LEGEND_FILE
    write_legend_png(report.legend(), folder / LEGEND_FILE)
    files = {"markdown": folder / "report.md", "html": folder / "report.html", "json": folder / "report.json"}
    files["markdown"].write_text(render_markdown(report), encoding="utf-8")
    files["html"].write_text(render_html(report), encoding="utf-8")
    summary = {k: v for k, v in report.summary.items() if k != "confusion"}
    record = {"verdict": report.verdict, "summary": summary, "notes": report.notes,
              "checks": None if report.checks is None else [c.as_dict() for c in report.checks],
              "baseline": report.baseline_path or None, "samples": [asdict(e) for e in report.sheet]}
    files["json"].write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    if report.checks is not None:
        files["junit"] = folder / "junit.xml"
        files["junit"].write_text(render_junit(report, seconds), encoding="utf-8")
    return files
