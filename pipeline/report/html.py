"""The report as one HTML page (report.html): IoU bar chart inline, contact sheet from images/, colour legend."""
from __future__ import annotations

from html import escape

from pipeline.report.chart import iou_bar_chart
from pipeline.report.model import RunReport, fmt
from pipeline.report.palette import hex_colour
from pipeline.report.walk_section import head_rows, walk_rows

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
.pass { color: #1e7b34; font-weight: bold; } .fail { color: #b3261e; font-weight: bold; }
.note { background: #fff4d6; padding: 0.5em 1em; border-left: 4px solid #e0a800; }
.sheet td { vertical-align: top; } .sheet img { max-width: 256px; image-rendering: pixelated; }
.swatch { display: inline-block; width: 1.2em; height: 1.2em; border: 1px solid #555; vertical-align: middle; }
"""


def _checks(report: RunReport) -> str:
    rows = "".join(
        f"<tr><td>{escape(c.name)}</td><td class=\"{'pass' if c.passed else 'fail'}\">"
        f"{'ok' if c.passed else 'FAIL'}</td><td>{escape(c.message)}</td></tr>"
        for c in report.checks or []
    )
    return f"<h2>Checks</h2><table><tr><th>check</th><th>result</th><th>detail</th></tr>{rows}</table>"


def _sheet(report: RunReport) -> str:
    rows = []
    for e in report.sheet:
        gt = f'<img src="{escape(e.gt)}" alt="ground truth">' if e.gt else "no GT"
        rows.append(
            f"<tr><td>{escape(e.shard)}/{escape(e.key)}<br>mIoU {fmt(e.miou)}</td>"
            f'<td><img src="{escape(e.image)}" alt="image"></td><td>{gt}</td>'
            f'<td><img src="{escape(e.prediction)}" alt="prediction"></td></tr>'
        )
    return ("<h2>Samples</h2><table class=\"sheet\"><tr><th>sample</th><th>image</th><th>ground truth</th>"
            f"<th>prediction</th></tr>{''.join(rows)}</table>")


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
            f"<th>global rows kept</th></tr>{heads}</table>")


def render_html(report: RunReport) -> str:
    s = report.summary
    verdict = report.verdict
    css = {"PASS": "pass", "FAIL": "fail"}.get(verdict, "")
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in report.notes)
    facts = [
        ("output", report.out_dir),
        ("images", f"{s['num_images']} ({s['num_errors']} errors) in {s['num_shards']} shards"),
        ("mIoU", fmt(s["miou"])), ("aAcc", fmt(s.get("aacc"))), ("fingerprint", str(s.get("fingerprint"))),
    ]
    if report.baseline is not None:
        facts.append(("baseline", f"{report.baseline_path} (mIoU {fmt(report.baseline['miou'])}, "
                                  f"{report.baseline['created']})"))
    fact_rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
    chart = iou_bar_chart({name: iou for name, iou, _ in report.class_rows()},
                          (report.baseline or {}).get("per_class_iou"))
    body = [
        f"<h1>{escape(report.title)}</h1>", f'<p>Result: <span class="{css}">{escape(verdict)}</span></p>',
        notes, f"<table>{fact_rows}</table>",
        _checks(report) if report.checks is not None else "",
        "<h2>Per-class IoU (%)</h2>", chart,
        _walk(report) if walk_rows(s) else "",
        _sheet(report) if report.sheet else "",
        _legend(report),
    ]
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{escape(report.title)}</title>"
            f"<style>{_STYLE}</style></head><body>\n" + "\n".join(b for b in body if b) + "\n</body></html>\n")
