"""OUT/tune/report.html: one plot per searched key (mIoU against its value), the leaderboard, the
best settings, and the best trial's walk diagnostics where they exist."""
from __future__ import annotations

import base64
import io
import json
from html import escape

import matplotlib

matplotlib.use("Agg")  # no display on CI machines and cluster nodes
import matplotlib.pyplot as plt  # noqa: E402

from pipeline.report.html import page, table  # noqa: E402

_STYLE = ".plots img { max-width: 480px; margin: 0 1em 1em 0; }"


def _label(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def key_plot(key: str, values, rows: list[dict]) -> str:
    """PNG (base64) of every trial's mIoU against its value of `key`, best per value joined by a line."""
    position = {_label(v): i for i, v in enumerate(values)}
    with plt.rc_context({"font.size": 9}):
        fig, ax = plt.subplots(figsize=(4.8, 3.2))
        try:
            for metric, marker, name in (("miou", "o", "tune part"), ("miou_check", "x", "check part")):
                points = [(position[_label(r["settings"][key])], r[metric]) for r in rows if r[metric] is not None]
                if points:
                    ax.scatter(*zip(*points), marker=marker, alpha=0.7, label=name)
            best = [max((r["miou"] for r in rows if _label(r["settings"][key]) == _label(v)), default=None) for v in values]
            ax.plot([i for i, b in enumerate(best) if b is not None], [b for b in best if b is not None], color="#888")
            ax.set_xticks(range(len(values)), [_label(v) for v in values], rotation=30 if len(values) > 4 else 0)
            ax.set_xlabel(key)
            ax.set_ylabel("mIoU (%)")
            ax.legend(loc="best")
            fig.tight_layout()
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=100)
        finally:
            plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(x) -> str:
    return "–" if x is None else f"{x:.2f}"


def render_report(space, rows: list[dict], facts: dict, diagnostics: dict | None) -> str:
    plots = "".join(f'<img alt="{escape(k)}" src="data:image/png;base64,{key_plot(k, v, rows)}">'
                    for k, v in zip(space.keys, space.values))
    board = table(["rank", "trial", *space.keys, "mIoU tune", "mIoU check", "seconds"],
                  [[i + 1, r["trial"], *(_label(r["settings"][k]) for k in space.keys), _fmt(r["miou"]),
                    _fmt(r["miou_check"]), f"{r['seconds']:.2f}"] for i, r in enumerate(rows)])
    body = ["<h1>nerve tune</h1>", table(["", ""], [[k, v] for k, v in facts.items()]),
            "<h2>mIoU against each searched value</h2>", f'<div class="plots">{plots}</div>', "<h2>Leaderboard</h2>", board]
    if rows:
        body += ["<h2>Best settings</h2>", table(["key", "value"], [[k, _label(v)] for k, v in rows[0]["settings"].items()])]
    if diagnostics:
        body += ["<h2>Walk diagnostics of the best trial</h2>",
                 table(["figure", "value"], [[k, _label(v)] for k, v in diagnostics.items()])]
    return page("nerve tune", body, _STYLE)
