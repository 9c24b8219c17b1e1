"""A run's report as one HTML page: the run at a glance (figures, errors by reason, the per-class IoU chart
and walk histograms inline), the checks against a baseline when there are any, the gallery and error
rows (gallery.py), and the colour legend. `nerve regress` and `nerve demo` write it as report.html,
`nerve report` as index.html."""
from __future__ import annotations

from html import escape

from pipeline.report.chart import iou_bar_chart, walk_histograms
from pipeline.report.gallery import errors_section, gallery_section
from pipeline.report.model import RunReport, fmt
from pipeline.report.palette import hex_colour
from pipeline.report.walk_section import FIGURE_NAMES, head_rows, walk_rows

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
.pass { color: #1e7b34; font-weight: bold; } .fail { color: #b3261e; font-weight: bold; }
.note { background: #fff4d6; padding: 0.5em 1em; border-left: 4px solid #e0a800; }
.swatch { display: inline-block; width: 1.2em; height: 1.2em; border: 1px solid #555; vertical-align: middle; }
.controls { position: sticky; top: 0; background: #fff; padding: 0.5em 0; border-bottom: 1px solid #ddd; z-index: 1; }
.controls label { margin-right: 1em; } .controls input { width: 5em; }
.cards { display: flex; flex-wrap: wrap; gap: 0.6em; margin-top: 0.6em; }
.card { margin: 0; border: 1px solid #ccc; padding: 0.3em; width: 330px; font-size: 0.85em; }
.card img { display: block; max-width: 324px; min-height: 20px; }
.card .key { font-weight: bold; overflow-wrap: anywhere; }
.cls { display: inline-block; margin-right: 0.6em; } .cls i { display: inline-block; width: 0.8em; height: 0.8em;
  margin-right: 0.25em; border: 1px solid #555; vertical-align: middle; }
"""


def page(title: str, body: list[str], style: str = "") -> str:
    """A whole HTML page: no external script, style or font, so it opens from disk anywhere."""
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            f"<style>{_STYLE}{style}</style></head><body>\n" + "\n".join(b for b in body if b) + "\n</body></html>\n")


def table(header: list[str], rows: list[list]) -> str:
    """A plain table; every cell escaped."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _checks(report: RunReport) -> str:
    rows = "".join(
        f"<tr><td>{escape(c.name)}</td><td class=\"{'pass' if c.passed else 'fail'}\">"
        f"{'ok' if c.passed else 'FAIL'}</td><td>{escape(c.message)}</td></tr>"
        for c in report.checks or []
    )
    return f"<h2>Checks</h2><table><tr><th>check</th><th>result</th><th>detail</th></tr>{rows}</table>"


def _legend(report: RunReport) -> str:
    rows = "".join(f'<tr><td><span class="swatch" style="background:{hex_colour(rgb)}"></span></td>'
                   f"<td>{escape(name)}</td></tr>" for name, rgb in report.legend())
    return f'<h2>Colours</h2><table class="legend"><tr><th>colour</th><th>class</th></tr>{rows}</table>'


def _walk(report: RunReport) -> str:
    s = report.summary
    figures = "".join(f"<tr><td>{escape(n)}</td><td>{m:.3f}</td><td>{lo:.3f}</td><td>{hi:.3f}</td></tr>"
                      for n, m, lo, hi in walk_rows(s))
    heads = "".join(f"<tr><td>{h}</td><td>{w:.3f}</td><td>{neg:.3f}</td><td>{kept:.3f}</td></tr>"
                    for h, w, neg, kept in head_rows(s))
    return (f"<h2>Random walk ({s['walk']['images']} images)</h2><table><tr><th>figure</th><th>mean</th><th>p5</th>"
            f"<th>p95</th></tr>{figures}</table><table><tr><th>head</th><th>mean weight</th><th>negative cosines</th>"
            f"<th>global rows kept</th></tr>{heads}</table>" + _walk_charts(report))


def _walk_charts(report: RunReport) -> str:
    if not report.walk_histograms:
        return ""
    per_head = (report.summary.get("walk") or {}).get("per_head") or {}
    return walk_histograms(report.walk_histograms, FIGURE_NAMES, per_head.get("head_weights"))


def _fingerprint(report: RunReport) -> str:
    """The digest, and the parts a reader checks first (engine, vocabulary size, code version)."""
    fp = report.fingerprint or {}
    parts = [str(report.summary.get("fingerprint") or fp.get("digest"))]
    if fp.get("engine"):
        parts.append(f"engine {fp['engine'].get('name')}")
    if fp.get("classes"):
        parts.append(f"{len(fp['classes'])} classes")
    if fp.get("code"):
        parts.append(f"code {fp['code']}")
    return " · ".join(parts)


def _errors_by_reason(report: RunReport) -> str:
    reasons = report.summary.get("errors_by_reason") or {}
    if not reasons:
        return ""
    return "<h2>Errors by reason</h2>" + table(["reason", "rows"], sorted(reasons.items(), key=lambda r: -r[1]))


def _jump_links(report: RunReport) -> str:
    """The gallery sits below the figures: one line to go straight to it (and to the error rows)."""
    if report.rows is None:
        return ""
    links = ['<a href="#gallery">images, worst first</a>'] + (['<a href="#errors">error rows</a>'] if report.rows.errors else [])
    return f"<p>Go to: {' · '.join(links)}</p>"


def render_html(report: RunReport) -> str:
    s = report.summary
    verdict = report.verdict
    css = {"PASS": "pass", "FAIL": "fail"}.get(verdict, "")
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in report.notes)
    facts = [
        ("output", report.out_dir),
        ("images", f"{s['num_images']} ({s['num_errors']} errors) in {s['num_shards']} shards"),
        ("mIoU", fmt(s["miou"])), ("aAcc", fmt(s.get("aacc"))), ("fingerprint", _fingerprint(report)),
    ]
    if report.baseline is not None:
        facts.append(("baseline", f"{report.baseline_path} (mIoU {fmt(report.baseline['miou'])}, "
                                  f"{report.baseline['created']})"))
    fact_rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
    chart = ("<h2>Per-class IoU (%)</h2>" + iou_bar_chart({name: iou for name, iou, _ in report.class_rows()},
                                                         (report.baseline or {}).get("per_class_iou"))
             if s["miou"] is not None or report.baseline is not None else "")
    rows = report.rows
    body = [
        f"<h1>{escape(report.title)}</h1>",
        f'<p>Result: <span class="{css}">{escape(verdict)}</span></p>' if report.checks is not None else "",
        notes, f"<table>{fact_rows}</table>", _jump_links(report),
        _checks(report) if report.checks is not None else "",
        _errors_by_reason(report), chart,
        _walk(report) if walk_rows(s) else "",
        _legend(report),
        gallery_section(rows, report.ok_rows) if rows is not None else "",
        errors_section(rows) if rows is not None else "",
    ]
    return page(report.title, body)
