"""`nerve bench store`'s table and plot: each step's wall seconds and requests to the store."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def store_table(results: dict, cfg) -> str:
    lines = [f"{cfg.shards} one-sample shards on S3 (moto) with {cfg.delay_ms:g} ms added to every request",
             f"{'step':<32} {'seconds':>8}  requests"]
    for step, figures in results["steps"].items():
        requests = ", ".join(f"{method} {n}" for method, n in sorted(figures["requests"].items()))
        lines.append(f"{step:<32} {figures['seconds']:>8}  {requests}")
    lines.append(f"rerun with every shard done: {results['rerun_skipped']} skipped, {results['rerun_labeled']} labeled")
    lines.append(f"rerun after removing {len(results['removed'])} markers relabeled exactly those: "
                 f"{results['relabeled_exactly_removed']}")
    lines.append("load average: " + " ".join(f"{v:.2f}" for v in results["load_average"]))
    return "\n".join(lines)


def store_plot(results: dict, cfg, path) -> None:
    steps = list(results["steps"])
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.barh(steps, [results["steps"][s]["seconds"] for s in steps])
    ax.set_xlabel("seconds")
    ax.set_title(f"{cfg.shards} shards, {cfg.delay_ms:g} ms per request")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
