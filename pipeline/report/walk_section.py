"""The report's "Random walk" section: summary.json's `walk` figures as rows (docs/method.md, "Walk diagnostics")."""
from __future__ import annotations

FIGURE_NAMES = {
    "global_rows_kept": "global rows kept (share)",
    "local_rows_kept": "local rows kept (share)",
    "negative_fraction": "negative cosines (share)",
    "head_weight_max": "largest head weight",
    "mass_moved": "mass moved (mean L1 per node)",
}


def walk_rows(summary: dict) -> list[tuple[str, float, float, float]]:
    """(figure, mean, p5, p95) over the job's images; empty when no image was walked."""
    walk = summary.get("walk") or {}
    return [(label, walk[key]["mean"], walk[key]["p5"], walk[key]["p95"]) for key, label in FIGURE_NAMES.items() if key in walk]


def head_rows(summary: dict) -> list[tuple[int, float, float, float]]:
    """(head, mean weight, mean negative share, mean global rows kept) per attention head."""
    per_head = (summary.get("walk") or {}).get("per_head")
    if not per_head:
        return []
    return list(zip(range(len(per_head["head_weights"])), per_head["head_weights"], per_head["negative_fraction"],
                    per_head["global_rows_kept"]))
