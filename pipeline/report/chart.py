"""Per-class IoU bar chart as an SVG string (matplotlib), for inlining in the HTML report."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display on CI machines and cluster nodes
import matplotlib.pyplot as plt  # noqa: E402


def iou_bar_chart(per_class: dict[str, float | None], baseline: dict[str, float | None] | None = None) -> str:
    """Horizontal bars, one per class (None drawn as 0 and marked n/a); baseline values as ticks."""
    names = list(per_class)
    values = [per_class[n] or 0.0 for n in names]
    height = max(2.0, 0.28 * len(names) + 0.9)
    with plt.rc_context({"svg.fonttype": "none", "font.size": 9}):
        fig, ax = plt.subplots(figsize=(7.0, height))
        try:
            rows = range(len(names))
            ax.barh(rows, values, color="#4878a8", label="this run")
            if baseline:
                marks = [(i, baseline[n]) for i, n in enumerate(names) if baseline.get(n) is not None]
                ax.scatter([v for _, v in marks], [i for i, _ in marks], marker="|", s=160, color="#c0392b",
                           linewidths=2, label="baseline", zorder=3)
                ax.legend(loc="lower right")
            for i, n in enumerate(names):
                text = "n/a" if per_class[n] is None else f"{per_class[n]:.1f}"
                ax.text(values[i] + 0.8, i, text, va="center")
            ax.set_yticks(list(rows), names)
            ax.invert_yaxis()
            ax.set_xlim(0, 108)
            ax.set_xlabel("IoU (%)")
            fig.tight_layout()
            buf = io.StringIO()
            fig.savefig(buf, format="svg")
        finally:
            plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]  # drop the XML prolog and doctype: the SVG goes inline
