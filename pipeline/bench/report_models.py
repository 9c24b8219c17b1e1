"""Tables and plots of the model benchmarks: refinement alone, the engine per stage, the walk's
robustness sweep, and the GPU acceptance run that combines them. Each takes the results and the
typed config they were measured with (pipeline/bench/report.py dispatches).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or CI
import matplotlib.pyplot as plt  # noqa: E402

from pipeline.bench.tables import fmt, format_table, markdown_table, mib  # noqa: E402


# ---- refine ----------------------------------------------------------------------------------
def refine_table(results: dict, cfg) -> str:
    rows = []
    for r in results["runs"]:
        if r["status"] != "ok":
            rows.append([r["case"], r["N"], r["K"], None, None, None, None, None, r["status"]])
            continue
        rows.append([r["case"], r["N"], r["K"], r["seconds"], mib(r["peak_bytes"]), r.get("ops_per_image"),
                     r.get("max_abs_error"), r.get("reference"), "ok"])
    text = format_table(["case", "N", "K", "s/image", "peak MiB", "ops/image", "max|ΔP|", "vs", "status"], rows)
    fits = [[e["case"], e["K"], e["time_exponent"], e["memory_exponent"], len(e["sizes"])] for e in results["exponents"]]
    text += "\n\ngrowth with N (value ∝ N^exponent)\n" + format_table(["case", "K", "time exp", "memory exp", "points"], fits)
    check = results["cross_check"]
    text += (
        f"\n\ncross-check low-rank vs dense walk: max |ΔP| = {fmt(check['max_abs_error'])}"
        f" (tolerance {check['tolerance']:g}): {'agree' if check['agree'] else 'DISAGREE' if check['agree'] is False else 'not run'}"
    )
    text += f"\npeak memory: {_memory_methods(results['runs'])}"
    return text


def _memory_methods(rows: list[dict]) -> str:
    return ", ".join(sorted({r["memory_method"] for r in rows if "memory_method" in r})) or "-"


METHOD_LINES = {"lowrank": "-", "dense": "--", "iseg": ":", "dslo_optimal_path": "-.", "dslo_max_velocity": (0, (1, 4))}


def refine_plot(results: dict, cfg, path: Path) -> None:
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 5))
    k0 = cfg.classes[0]
    curves: dict[str, list[dict]] = {}
    for r in results["runs"]:
        if r["status"] == "ok" and r["K"] == k0:
            curves.setdefault(r["case"], []).append(r)
    colours = plt.get_cmap("tab10")
    forms = sorted({r["form"] + str(r["features"]) for rows in curves.values() for r in rows})
    for name, rows in sorted(curves.items()):
        # colour: affinity form (and rank); line: method, so each form's methods pair up visually
        style = dict(
            marker="o",
            label=name,
            color=colours(forms.index(rows[0]["form"] + str(rows[0]["features"])) % 10),
            linestyle=METHOD_LINES.get(rows[0]["method"], "-"),
        )
        ax_t.plot([r["N"] for r in rows], [r["seconds"] for r in rows], **style)
        mem = [(r["N"], r["peak_bytes"] / 2**20) for r in rows if r["peak_bytes"]]
        if mem:
            ax_m.plot(*zip(*mem), **style)
    for ax, label in ((ax_t, "seconds"), (ax_m, "peak memory (MiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("nodes N")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.set_title(f"refinement time, K = {k0}, {results['device_name']}")
    ax_m.set_title(f"peak memory ({_memory_methods(results['runs'])})")
    ax_t.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- engine ----------------------------------------------------------------------------------
def engine_table(results: dict, cfg) -> str:
    stages = results["stages"]
    rows = []
    for r in results["runs"]:
        per_image = [r["stage_seconds_per_image"].get(s) for s in stages]
        rows.append(
            [r["models"], r["dtype"], r["compile"], r["batch_size"], *[None if v is None else v * 1e3 for v in per_image],
             r["images_per_second"], r["speedup"], r["warmup_seconds"], r.get("tflops_per_second"), r.get("peak_fraction"),
             mib(r.get("model_bytes")), mib(r.get("engine_peak_bytes"))]
        )
    header = ["models", "dtype", "compile", "batch", *[f"{s} ms/img" for s in stages], "img/s", "speedup",
              "warm-up s", "TFLOP/s", "of peak", "weights MiB", "peak MiB"]
    return format_table(header, rows) + f"\npeak = weights + one batch's peak above them ({_memory_methods(results['runs'])})"


def engine_plot(results: dict, cfg, path: Path) -> None:
    """Stacked stage times per image; one panel per model set, since full and tiny differ 100-fold."""
    stages = results["stages"]
    sets = list(dict.fromkeys(r["models"] for r in results["runs"]))
    width = sum(max(4, 1.1 * sum(r["models"] == m for r in results["runs"])) for m in sets)
    fig, axes = plt.subplots(1, len(sets), figsize=(width, 5), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, models in zip(axes[0], sets):
        runs = [r for r in results["runs"] if r["models"] == models]
        bottom = [0.0] * len(runs)
        for i, stage in enumerate(stages):
            values = [1e3 * r["stage_seconds_per_image"].get(stage, 0.0) for r in runs]
            ax.bar(range(len(runs)), values, bottom=bottom, label=stage, color=colours(i % 10))
            bottom = [b + v for b, v in zip(bottom, values)]
        ax.set_xticks(range(len(runs)), [f"{r['dtype']}\n{r['compile']}\nb={r['batch_size']}" for r in runs], fontsize=7)
        ax.set_ylabel("milliseconds per image")
        ax.set_title(f"{models} models, {results['device_name']}")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- sweep -----------------------------------------------------------------------------------
def sweep_rows(results: dict) -> list[dict]:
    """The (form, setting) rows, best worst case first (then best median)."""
    return sorted(results["rows"], key=lambda r: (-r["worst"], -r["median"], r["form"]))


def sweep_table(results: dict, cfg) -> str:
    base = results["baseline"]
    rows = [[base["form"], "-", "-", "-", base["worst"], base["median"], base["best"]]]
    rows += [[r["form"], r["alpha"], r["beta"], r["c"], r["worst"], r["median"], r["best"]] for r in sweep_rows(results)]
    table = format_table(["form", "alpha", "beta", "c", "worst mIoU", "median", "best"],
                         [[fmt(v, ".1f") if isinstance(v, float) and i >= 4 else v for i, v in enumerate(row)]
                          for row in rows])
    chosen = results["chosen"]
    return (f"{len(results['problems'])} planted problems per row\n" + table +
            f"\n\nbest worst case: {chosen['form']} alpha={chosen['alpha']:g} beta={chosen['beta']:g} c={chosen['c']:g}"
            f" (worst {chosen['worst']:.1f}, median {chosen['median']:.1f}, best {chosen['best']:.1f} mIoU)")


def sweep_plot(results: dict, cfg, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(12, 0.25 * len(results["rows"]) + 2))
    rows = sweep_rows(results)[::-1]
    for y, r in enumerate(rows):
        ax.plot([r["worst"], r["best"]], [y, y], color="0.6")
        ax.plot(r["median"], y, "o", color="C0")
    ax.axvline(results["baseline"]["median"], color="C3", linestyle="--", label="G alone (median)")
    ax.set_yticks(range(len(rows)), [f"{r['form']} a={r['alpha']:g} b={r['beta']:g} c={r['c']:g}" for r in rows], fontsize=7)
    ax.set_xlabel("mIoU % over the planted problems: worst - best, dot = median")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---- gpu (the acceptance run: engine sweep, refinement, label job, as Markdown) -------------------
def gpu_table(results: dict, cfg) -> str:
    engine, refine, pipeline = results["engine"], results["refine"], results["pipeline"]
    stages = engine["stages"]
    sweep = [[r["compile"], r["batch_size"], r["engine_images_per_second"], r["images_per_second"], r.get("speedup"),
              r["warmup_seconds"], r.get("tflops_per_second"), r.get("peak_fraction"), mib(r.get("engine_peak_bytes")),
              *[1e3 * r["stage_seconds_per_image"].get(s, 0.0) for s in stages]] for r in engine["runs"]]
    walks = [[r["case"], r["N"], r["K"], r.get("images", 1), r.get("seconds"), mib(r.get("peak_bytes")),
              r.get("ops_per_image"), r["status"]] for r in refine["runs"]]
    label = [[name, v["images"], v["seconds"], v["images_per_second"]] for name, v in pipeline["measured"].items()]
    parts = [
        f"## nerve bench gpu: {results['device_name']}, {cfg.models} models, {cfg.dtype}",
        "wall seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in results["seconds"].items())
        + f", total {sum(results['seconds'].values()):.0f}",
        "### Engine (batch sweep; compile at the compiled batch sizes)",
        markdown_table(["compile", "batch", "engine img/s", "with prepare + encode img/s", "speedup", "warm-up s", "TFLOP/s",
                        "of peak", "peak MiB", *[f"{s} ms/img" for s in stages]], sweep),
        f"### Refinement on {refine['device_name']} (seconds per image)",
        markdown_table(["case", "N", "K", "images per call", "s/image", "peak MiB", "ops/image", "status"], walks),
        "### nerve label on real photographs vs the engine alone",
        markdown_table(["path", "images", "seconds", "img/s"], label),
        f"pipeline overhead (engine alone ÷ nerve label, end to end): {fmt(pipeline['overhead_ratio'])}; "
        f"once actors are up: {fmt(pipeline['overhead_ratio_actors_up'])}",
    ]
    return "\n\n".join(parts)


def gpu_plot(results: dict, cfg, path: Path) -> None:
    engine_plot(results["engine"], cfg.sweep, path)
