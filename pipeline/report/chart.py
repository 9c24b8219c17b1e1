"""The report's charts (matplotlib, one style): per-class IoU and the walk's histograms as SVG strings
for the HTML pages, and mIoU per dataset beside the papers' figures as a PNG for `nerve evaluate`."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display on CI machines and cluster nodes
import matplotlib.pyplot as plt  # noqa: E402

THIS_RUN = "#4878a8"  # bars of this run's figures
REFERENCE = "#c0392b"  # what they are compared with: a baseline, a paper


def iou_bar_chart(per_class: dict[str, float | None], baseline: dict[str, float | None] | None = None) -> str:
    """Horizontal bars, one per class (None drawn as 0 and marked n/a); baseline values as ticks."""
    names = list(per_class)
    values = [per_class[n] or 0.0 for n in names]
    height = max(2.0, 0.28 * len(names) + 0.9)
    with plt.rc_context({"svg.fonttype": "none", "font.size": 9}):
        fig, ax = plt.subplots(figsize=(7.0, height))
        try:
            rows = range(len(names))
            ax.barh(rows, values, color=THIS_RUN, label="this run")
            if baseline:
                marks = [(i, baseline[n]) for i, n in enumerate(names) if baseline.get(n) is not None]
                ax.scatter([v for _, v in marks], [i for i, _ in marks], marker="|", s=160, color=REFERENCE,
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
    """One panel per walk figure (images per bin of its value; `histograms` from WalkTotals.histograms,
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


def paired_bar_chart(names: list[str], ours: list[float | None], reference: list[float | None],
                     reference_label: str, title: str) -> bytes:
    """A PNG: per name, this run's bar beside the reference's (None: no bar, marked n/a)."""
    width = max(4.0, 0.9 * len(names) + 1.5)
    with plt.rc_context({"font.size": 9}):
        fig, ax = plt.subplots(figsize=(width, 3.6))
        try:
            for offset, values, colour, label in ((-0.2, ours, THIS_RUN, "this run"), (0.2, reference, REFERENCE, reference_label)):
                xs = [i + offset for i in range(len(names))]
                ax.bar(xs, [v or 0.0 for v in values], width=0.4, color=colour, label=label)
                for x, v in zip(xs, values):
                    ax.text(x, (v or 0.0) + 1.0, "n/a" if v is None else f"{v:.1f}", ha="center", fontsize=7)
            ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
            ax.set_ylim(0, 118)  # room above 100 for the legend
            ax.set_ylabel("mIoU (%)")
            ax.set_title(title)
            ax.legend(loc="upper center", ncols=2, frameon=False)
            fig.tight_layout()
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=110)
        finally:
            plt.close(fig)
    return buf.getvalue()
