"""The report's charts as SVG strings (matplotlib), inlined in the HTML pages: per-class IoU, walk histograms."""
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
            return _inline_svg(fig)
        finally:
            plt.close(fig)


def walk_histograms(histograms: dict[str, tuple], labels: dict[str, str], head_weights: list[float] | None) -> str:
    """One panel per walk figure (images per bin of its value; `histograms` from walk_stats.merged_histograms,
    `labels` their titles) and one of the mean weight of each attention head."""
    panels = len(histograms) + (1 if head_weights else 0)
    columns = min(3, panels)
    rows = -(-panels // columns)
    with plt.rc_context({"svg.fonttype": "none", "font.size": 8}):
        fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.3 * rows), squeeze=False)
        try:
            flat = list(axes.reshape(-1))
            for ax, (name, (edges, counts)) in zip(flat, histograms.items()):
                ax.bar(edges[:-1], counts, width=edges[1] - edges[0], align="edge", color="#4878a8")
                ax.set_title(labels.get(name, name))
                ax.set_ylabel("images")
            if head_weights:
                ax = flat[len(histograms)]
                ax.bar(range(len(head_weights)), head_weights, color="#a86848")
                ax.set_title("mean weight per head")
                ax.set_xlabel("head")
            for ax in flat[panels:]:
                ax.axis("off")
            return _inline_svg(fig)
        finally:
            plt.close(fig)


def _inline_svg(fig) -> str:
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]  # drop the XML prolog and doctype: the SVG goes inline
