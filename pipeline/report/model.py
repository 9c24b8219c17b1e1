"""What a report shows, independent of the format it is written in."""
from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.report.baseline import Check
from pipeline.report.cards import RunRows
from pipeline.report.contact_sheet import SheetEntry
from pipeline.report.palette import legend

# `nerve evaluate`'s files beside its runs, named once: it writes them, `nerve report` reads them back.
EVALUATION_JSON, EVALUATION_MD, EVALUATION_CHART = EVALUATION_FILES = ("evaluation.json", "evaluation.md", "evaluation.png")


@dataclass
class RunReport:
    title: str
    out_dir: str
    summary: dict  # OUT/summary.json
    checks: list[Check] | None = None  # None: no baseline was compared
    baseline: dict | None = None
    baseline_path: str = ""
    notes: list[str] = field(default_factory=list)  # warnings and hints shown at the top
    sheet: list[SheetEntry] = field(default_factory=list)
    legend_image: str = ""  # the legend as a PNG, relative to the report directory (Markdown shows it)
    rows: RunRows | None = None  # the gallery's cards and the error rows (HTML only)
    ok_rows: int = 0  # ok rows of the run: more than the gallery's cards when it shows only the worst
    walk_histograms: dict = field(default_factory=dict)  # WalkTotals.histograms of the run's done shards (pipeline/output/walk_totals.py)
    fingerprint: dict | None = None  # the run's fingerprint as config.yaml records it (digest and parts)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks or [] if not c.passed]

    @property
    def verdict(self) -> str:
        if self.checks is None:
            return "not compared"
        return "FAIL" if self.failures else "PASS"

    def class_rows(self) -> list[tuple[str, float | None, float | None]]:
        """(class, IoU, baseline IoU) in vocabulary order."""
        base = (self.baseline or {}).get("per_class_iou", {})
        ious = self.summary["per_class_iou"]
        return [(name, ious.get(name), base.get(name)) for name in self.class_names]

    def legend(self) -> list[tuple[str, tuple[int, int, int]]]:
        """(class name, RGB) as the contact sheet draws them, plus the unlabeled / ignore colour."""
        return legend(self.class_names)

    @property
    def class_names(self) -> list[str]:
        """Vocabulary order (summary.json sorts its keys, class_names keeps the order)."""
        return self.summary.get("class_names") or list(self.summary["per_class_iou"])


def random_weights_note(models: list[str]) -> str | None:
    """The warning every report carries when its run loaded random weights (`models`: what
    nerve_core.models.random_weights.random_weight_models found in the model files), else None."""
    if not models:
        return None
    return (f"RANDOM weights ({'; '.join(models)}): test models, so the masks and mIoU are meaningless. "
            "They only show that every stage runs.")


def fmt(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)
