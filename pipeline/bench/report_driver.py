"""`nerve bench driver`'s table and plot: per configuration, the driver's CPU per shard event, its
peak RSS, the resume decision, the summary and the store requests of each phase; the cost per
shard from one shard count to the next (docs/benchmarks.md, "The driver at scale")."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pipeline.bench.tables import fmt, format_table  # noqa: E402

PHASES = ("run", "resume", "summary")


def _requests(phase: dict) -> str:
    return " ".join(f"{kind}={count}" for kind, count in sorted(phase["requests"].items())) or "-"


def driver_table(results: dict, cfg) -> str:
    header = ["shards", "actors", "events", "driver CPU ms/event", "sim CPU ms/event", "peak RSS MB", "resume s",
              "summary s", "run s", "left on resume", *(f"{p} requests" for p in PHASES)]
    rows = [[c["case"]["shards"], c["case"]["actors"], c["shard_events"], c["driver_cpu_ms_per_event"],
             c["simulation_cpu_ms_per_event"], c["peak_rss_mb"], c["resume"]["seconds"], c["summary"]["seconds"],
             c["run"]["seconds"], c["left_on_resume"], *(_requests(c[p]) for p in PHASES)] for c in results["cases"]]
    lines = [format_table(header, rows), "", "cost per shard, from one shard count to the next (1.0: linear):"]
    for first, then in _steps(results["cases"]):
        grow = then["case"]["shards"] / first["case"]["shards"]
        lines.append(f"  {first['case']['actors']} actors, {first['case']['shards']} -> {then['case']['shards']} shards: "
                     f"CPU/event x{fmt(then['driver_cpu_ms_per_event'] / first['driver_cpu_ms_per_event'])}, "
                     f"resume s/shard x{fmt(then['resume']['seconds'] / first['resume']['seconds'] / grow)}, "
                     f"summary s x{fmt(then['summary']['seconds'] / first['summary']['seconds'])}")
    calibration = results.get("calibration")
    if calibration:
        real, sim = calibration["real"], calibration["simulated"]
        lines.append(f"calibration, {real['shards']} one-sample shards x {real['actors']} actors: real "
                     f"{fmt(real['driver_cpu_ms_per_event'])} ms CPU/event, simulated {fmt(sim['driver_cpu_ms_per_event'])}"
                     f" (ratio {fmt(calibration['ratio'])})")
    lines.append(f"load average (1, 5, 15 min) at the end: {', '.join(f'{x:.2f}' for x in results['load_average'])}")
    return "\n".join(lines)


def _steps(cases: list[dict]) -> list[tuple[dict, dict]]:
    """Consecutive shard counts of each actor count."""
    by_actors: dict[int, list[dict]] = {}
    for case in sorted(cases, key=lambda c: (c["case"]["actors"], c["case"]["shards"])):
        by_actors.setdefault(case["case"]["actors"], []).append(case)
    return [(a, b) for runs in by_actors.values() for a, b in zip(runs, runs[1:])]


def driver_plot(results: dict, cfg, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for actors in sorted({c["case"]["actors"] for c in results["cases"]}):
        cases = sorted((c for c in results["cases"] if c["case"]["actors"] == actors), key=lambda c: c["case"]["shards"])
        ax.plot([c["case"]["shards"] for c in cases], [c["driver_cpu_ms_per_event"] for c in cases], "o-",
                label=f"{actors} actors")
    ax.set_xscale("log")
    ax.set_xlabel("shards")
    ax.set_ylabel("driver CPU ms per shard event")
    ax.set_title("nerve bench driver: the driver's cost per shard")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
