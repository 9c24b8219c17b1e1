"""A browsable report of any output directory: the run at a glance, every image worst first, the
error rows. `nerve report` writes it as index.html; `nerve regress` and `nerve demo` add the same
gallery to their report.html (write.py).

The output directory is read through OutputDir (local or an object store); the report is written to
a local folder that opens from disk: no server, no network.
"""
from __future__ import annotations

import json
from html import escape
from pathlib import Path

from nerve_core.errors import ConfigError, NerveError, NotFound
from nerve_core.models.random_weights import random_weight_models
from pipeline.output.outputdir import CONFIG_FILE, SUMMARY_FILE, OutputDir
from pipeline.output.run_record import RunRecord
from pipeline.output.writers import read_json
from pipeline.read.shardlist import expand_shards, shard_id
from pipeline.report.cards import read_rows
from pipeline.report.gallery import write_gallery_files
from pipeline.report.html import page, render_html
from pipeline.report.model import EVALUATION_CHART, EVALUATION_JSON, RunReport, fmt, random_weights_note
from pipeline.report.palette import class_palette
from pipeline.report.thumbnails import ThumbJob, make_thumbnails
from pipeline.run.preflight import unreadable_shards
from pipeline.storage import join, read_bytes

INDEX_FILE = "index.html"


def run_summary(out: OutputDir) -> dict:
    """summary.json, or the same totals from the run index when the run never wrote one."""
    if out.fs.exists(join(out.root, SUMMARY_FILE)):
        return out.summary()
    record = out.existing_record()
    index = out.index(len(record.class_names))
    return index.totals().summary(record.class_names, record.fingerprint, list(index.partial))


def _sources(record: RunRecord, shards, done: list[str], notes: list[str]) -> dict[str, str]:
    """shard -> tar URL of the run's done shards. Given input.shards must name some of them, all
    readable (a misspelt path is one line, not a report without pictures); the recorded ones may have
    moved, which leaves the cards with their masks alone and says so in `notes`."""
    if shards:
        given = {shard_id(u): u for u in expand_shards(shards) if shard_id(u) in done}
        if not given:
            raise ConfigError(f"input.shards={shards} names none of the run's {len(done)} done shards "
                              f"({', '.join(done[:3])}{', ...' if len(done) > 3 else ''})")
        missing = unreadable_shards(list(given.values()))
        if missing:
            raise NotFound(f"input.shards: {len(missing)} shards do not exist or cannot be read: {', '.join(missing[:3])}")
        return given
    try:
        recorded = {shard_id(u): u for u in expand_shards(record.config.input.shards) if shard_id(u) in done}
    except NerveError as exc:
        notes.append(f"No pictures: the input shards the run recorded cannot be listed ({exc}); give input.shards=...")
        return {}
    missing = unreadable_shards(list(recorded.values()))
    if missing:
        notes.append(f"No pictures for {len(missing)} shards: their recorded tars do not exist or cannot be read "
                     f"({', '.join(missing[:3])}); give input.shards=...")
    return {s: u for s, u in recorded.items() if u not in missing}


def attach_gallery(report: RunReport, folder: Path, shards=None, limit: int = 0, progress: bool = True) -> dict:
    """Fill `report` with the run's cards (the `limit` worst, 0 = all), error rows, walk histograms and
    fingerprint; write the thumbnails and the gallery's files into `folder`. Returns thumbnail counts."""
    out = OutputDir(report.out_dir)
    record = out.existing_record()
    warning = random_weights_note(random_weight_models(record.config.engine))
    if warning and warning not in report.notes:
        report.notes.insert(0, warning)
    index = out.index(len(record.class_names))
    done = sorted(index.done())
    rows = read_rows(out, done)
    report.ok_rows = len(rows.cards)
    if limit > 0:
        rows.cards = rows.cards[:limit]
    job = ThumbJob(out, record, class_palette(record.class_names), _sources(record, shards, done, report.notes))
    counts = make_thumbnails(job, rows.cards, folder, progress=progress)
    report.rows, report.fingerprint = rows, record.fingerprint
    report.walk_histograms = index.totals(with_partial=False).walk.histograms()
    write_gallery_files(folder, rows, record.class_names, report.summary.get("num_images", 0))
    return counts


def write_run_report(out_url: str, folder, shards=None, limit: int = 0, progress: bool = True) -> tuple[Path, dict, dict]:
    """index.html (+ data.js, gallery.js, thumbs/) for one output directory; (page, thumbnail counts, summary)."""
    out = OutputDir(out_url)
    summary = run_summary(out)
    report = RunReport(f"nerve report: {out_url}", out_url, summary)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    counts = attach_gallery(report, folder, shards, limit, progress)
    path = folder / INDEX_FILE
    path.write_text(render_html(report), encoding="utf-8")
    return path, counts, summary


def run_dirs(root: OutputDir) -> list[str]:
    """Names of the sub-directories of `root` that are output directories (an evaluation's runs)."""
    found = []
    for entry in root.fs.ls(root.root, detail=True):
        name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
        if entry["type"] == "directory" and root.fs.exists(join(root.root, name, CONFIG_FILE)):
            found.append(name)
    return sorted(found)


def write_evaluation_report(root_url: str, names: list[str], folder, limit: int = 0, progress: bool = True) -> Path:
    """One run report per dataset (folder/{name}/index.html) and an index linking them, with each run's
    figures beside the papers' (OUT/evaluation.json and its chart, when `nerve evaluate` wrote them)."""
    root, folder = OutputDir(root_url), Path(folder)
    evaluation = join(root.root, EVALUATION_JSON)
    record = read_json(root.fs, evaluation) if root.fs.exists(evaluation) else {}
    papers = {r["dataset"]: r for r in record.get("rows", [])}
    rows = []
    for name in names:
        page_path, _, s = write_run_report(join(root_url, name), folder / name, None, limit, progress)
        paper = papers.get(name, {})
        rows.append([f'<a href="{escape(page_path.relative_to(folder).as_posix())}">{escape(name)}</a>',
                     *(escape(fmt(v)) for v in (s["num_images"], s["num_errors"], s["miou"], paper.get("paper_miou"),
                                                paper.get("delta")))])
    cells = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    body = [f"<h1>nerve report: {escape(root_url)}</h1>",
            "<table><tr><th>run</th><th>images</th><th>errors</th><th>mIoU</th><th>paper mIoU</th><th>delta</th></tr>"
            f"{cells}</table>"]
    folder.mkdir(parents=True, exist_ok=True)
    chart = join(root.root, EVALUATION_CHART)
    if root.fs.exists(chart):
        (folder / EVALUATION_CHART).write_bytes(read_bytes(root.fs, chart))
        body.append(f'<img src="{EVALUATION_CHART}" alt="mIoU per dataset beside the paper\'s">')
    if record:
        body.append(f"<details><summary>{EVALUATION_JSON}</summary><pre>{escape(json.dumps(record, indent=1))}</pre></details>")
    path = folder / INDEX_FILE
    path.write_text(page(f"nerve report: {root_url}", body), encoding="utf-8")
    return path
