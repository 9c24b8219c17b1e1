"""Tables and plots of the host benchmarks: `nerve label` against its engine alone (with the host's
CPU cost per stage and its ceilings) and the shard makers' cost per image. Each takes the results
and the typed config they were measured with (pipeline/bench/report.py dispatches).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or CI
import matplotlib.pyplot as plt  # noqa: E402

from pipeline.bench.tables import fmt, format_table  # noqa: E402


# ---- pipeline --------------------------------------------------------------------------------
def pipeline_table(results: dict, cfg) -> str:
    rows = [[name, v["images"], v["seconds"], v["images_per_second"]] for name, v in results["measured"].items()]
    text = format_table(["path", "images", "seconds", "img/s"], rows)
    return text + (
        f"\n\npipeline overhead (engine alone img/s ÷ nerve label img/s): {fmt(results['overhead_ratio'])}"
        f"\nwith the engine's model load counted too: {fmt(results['overhead_ratio_with_model_load'])}"
        f"\nagainst the label job once its actors are up: {fmt(results['overhead_ratio_actors_up'])}"
        f"\nthe label job's own engine batches: {fmt(results['label_job'].get('engine_images_per_second'))} img/s"
    ) + host_cost(results)


def host_cost(results: dict) -> str:
    """CPU ms per image per labeler stage (the main job, then each host ceiling's) and the ceilings."""
    columns = {"label job": results["label_job"].get("cpu_ms_per_image") or {}}
    for ceiling in results.get("ceilings", []):
        columns[f"ceiling, {ceiling['decode_threads']} decode threads"] = ceiling["cpu_ms_per_image"]
    stages = list(dict.fromkeys(s for cost in columns.values() for s in cost))
    if not stages:
        return ""
    text = "\n\nCPU ms per image (thread CPU time)\n" + format_table(
        ["stage", *columns], [[s, *[cost.get(s) for cost in columns.values()]] for s in stages])
    for ceiling in results.get("ceilings", []):
        tried = ", ".join(f"{t['images_per_second']:.0f}{'+' if t['sustained'] else '-'}" for t in ceiling["trials"])
        text += (f"\nhost ceiling, {ceiling['decode_threads']} decode threads: "
                 f"{fmt(ceiling['host_ceiling_images_per_second'])} img/s per actor (rates tried, + sustained: {tried})")
    return text


def bar_plot(path: Path, labels: list[str], values: list[float], unit: str, title: str, horizontal: bool = False) -> None:
    """One bar per label (horizontal ones for long labels), saved as a PNG."""
    fig, ax = plt.subplots(figsize=(7, 3) if horizontal else (6, 4))
    if horizontal:
        ax.barh(labels, values)
        ax.set_xlabel(unit)
    else:
        ax.bar(labels, values)
        ax.set_ylabel(unit)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def pipeline_plot(results: dict, cfg, path: Path) -> None:
    names = list(results["measured"])
    bar_plot(path, names, [results["measured"][n]["images_per_second"] for n in names], "images / second",
             f"pipeline vs engine alone, overhead x{fmt(results['overhead_ratio'])}")


# ---- shards ----------------------------------------------------------------------------------
def shards_table(results: dict, cfg) -> str:
    rows = [[name, m["images"], m["wall_ms_per_image"], m["cpu_ms_per_image"], m["cpu_vs_voc"]]
            for name, m in results["makers"].items()]
    return (f"{cfg.images} images of {cfg.width}x{cfg.height} per maker, best of {cfg.repeats}\n"
            + format_table(["maker", "images", "wall ms/img", "CPU ms/img", "CPU vs voc"], rows)
            + "\nload average (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in results["load_average"]))


def shards_plot(results: dict, cfg, path: Path) -> None:
    names = list(results["makers"])
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(names, [results["makers"][n]["cpu_ms_per_image"] for n in names])
    ax.set_ylabel("CPU milliseconds per image (best run)")
    ax.set_title("nerve shards: each maker's cost per image")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
