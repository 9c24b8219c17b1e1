"""Baselines for `nerve regress`: what a run measured, and the checks that compare a run with one.

A baseline is the accepted state of the figures on a pinned shard set. A run regresses when its
mIoU or any class's IoU falls below the baseline by more than the tolerance, when it has more error
rows, or when the pinned set itself changed (figures on another set are not comparable).
Improvements never fail; they are reported so that the baseline can be raised on purpose.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from nerve_core.errors import ConfigError
from pipeline.storage import atomic_write_local

FORMAT = "nerve-regress-baseline/1"


@dataclass
class Check:
    """One comparison; one JUnit test case."""

    name: str
    passed: bool
    measured: float | int | None
    baseline: float | int | None
    tolerance: float | int | None
    message: str

    def as_dict(self) -> dict:
        return asdict(self)


def baseline_from_summary(summary: dict, shards: list[str], engine: str) -> dict:
    """The figures of a finished run, as a baseline file holds them."""
    return {
        "format": FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "engine": engine,
        "fingerprint": summary.get("fingerprint"),
        "shards": sorted(shards),
        "num_images": summary["num_images"],
        "num_errors": summary["num_errors"],
        "miou": summary["miou"],
        "aacc": summary.get("aacc"),
        "per_class_iou": dict(summary["per_class_iou"]),
    }


def read_baseline(path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the baseline {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a nerve regress baseline (expected format {FORMAT!r})")
    return data


def write_baseline(path, baseline: dict) -> None:
    """Written via a temporary name, so a crash never leaves a half-written baseline behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_local(path, (json.dumps(baseline, indent=1, sort_keys=True) + "\n").encode("utf-8"))


def _floor_check(name: str, measured, base, tolerance: float) -> Check:
    """measured must be >= base - tolerance; a missing figure where the baseline had one fails."""
    if measured is None:
        return Check(name, False, None, base, tolerance, f"no figure (baseline {base:.2f})")
    delta = measured - base
    passed = delta >= -tolerance
    verdict = "ok" if passed else f"fell more than {tolerance:g} points"
    return Check(name, passed, measured, base, tolerance,
                 f"{measured:.2f} vs baseline {base:.2f} ({delta:+.2f}): {verdict}")


def compare(summary: dict, baseline: dict, shards: list[str], *, miou_tolerance: float,
            class_tolerance: float, error_tolerance: int) -> list[Check]:
    """Checks of a run's summary against a baseline, in report order (set, errors, mIoU, classes)."""
    same_set = sorted(shards) == list(baseline["shards"]) and summary["num_images"] == baseline["num_images"]
    checks = [Check(
        "pinned_set", same_set, summary["num_images"], baseline["num_images"], 0,
        f"{len(shards)} shards, {summary['num_images']} images"
        + ("" if same_set else f"; baseline had {len(baseline['shards'])} shards, "
                                f"{baseline['num_images']} images: figures are not comparable"),
    )]
    errors, base_errors = summary["num_errors"], baseline["num_errors"]
    checks.append(Check("errors", errors <= base_errors + error_tolerance, errors, base_errors, error_tolerance,
                        f"{errors} error rows (baseline {base_errors}, {error_tolerance} more allowed)"))
    checks.append(_floor_check("miou", summary["miou"], baseline["miou"], miou_tolerance))
    measured = summary["per_class_iou"]
    for name, base in baseline["per_class_iou"].items():
        if base is not None:  # a class absent from GT and predictions in the baseline is not scored
            checks.append(_floor_check(f"iou/{name}", measured.get(name), base, class_tolerance))
    return checks
