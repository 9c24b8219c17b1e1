"""`nerve bench sweep`: how robust each affinity form and (α, β, c) setting of the walk is.

Every form (cosine under both sign handlings, the latter at each `row_floors` value, and the
non-negative forms) and every setting of a small (α, β, c) grid walks the same planted-partition
problems (pipeline/bench/planted.py) over `seeds` × `noise_levels` × `noise_heads`. Each
(form, setting) gets its worst, median and best mIoU over the problems, and the one with the best
worst case (then the best median) is named: that is how the `nerve` preset's default is chosen
(docs/method.md, "Choosing the default"). G alone (argmax of the coarse CLIP probabilities) is the
baseline row.
"""
from __future__ import annotations

import itertools
import statistics
from dataclasses import asdict, dataclass, field

from nerve_core.refine.random_walk import nerve_propagate_settings
from pipeline.bench.measure import torch_threads
from pipeline.bench.planted import PlantedSpec, miou, planted_problem

FORMS = ("cosine", "cosine/row_sum", "shifted_cosine", "relu_cosine", "exp_cosine")


@dataclass
class NoiseLevel:
    g_noise: float  # uniform noise added to G (CLIP's error)
    feature_noise: float  # Gaussian noise on the partition heads' q, k (attention's error)


@dataclass
class SweepBenchConfig:
    output: str = "bench-results/sweep"
    threads: int = 0  # CPU threads for torch; 0 = torch's default
    side: int = 32  # grid side: N = side²
    regions: int = 6  # K
    block: int = 4  # G's resolution in nodes
    dim: int = 16  # D per head
    partition_heads: int = 4
    noise_heads: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    noise_levels: list[NoiseLevel] = field(default_factory=lambda: [NoiseLevel(0.6, 0.5), NoiseLevel(1.2, 1.0)])
    shared: float = 1.5  # direction shared by a partition head's nodes (most cosines positive)
    forms: list[str] = field(default_factory=lambda: list(FORMS))
    row_floors: list[float] = field(default_factory=lambda: [0.25, 0.5])  # cosine/row_sum
    temperature: float = 0.1  # exp_cosine's tau
    # The (alpha, beta, c) grid: every combination, plus `default` (the preset's values when the
    # sweep was last run) so the current choice is always in the table.
    alphas: list[float] = field(default_factory=lambda: [0.8, 0.95])
    betas: list[float] = field(default_factory=lambda: [0.3, 0.7])
    cs: list[float] = field(default_factory=lambda: [3.0, 30.0])
    default: list[float] = field(default_factory=lambda: [0.9, 0.5, 10.0])
    eps_self: float = 0.1
    steps: int = 40


def walk_forms(cfg: SweepBenchConfig) -> dict[str, tuple[str, dict]]:
    """Row name -> (affinity, options) for nerve_propagate."""
    unknown = sorted(set(cfg.forms) - set(FORMS))
    if unknown:
        raise ValueError(f"unknown sweep forms {unknown}; expected some of {FORMS}")
    out: dict[str, tuple[str, dict]] = {}
    for name in cfg.forms:
        if name == "cosine/row_sum":
            for floor in cfg.row_floors:
                out[f"cosine/row_sum@{floor:g}"] = ("cosine", {"sign_handling": "row_sum", "row_floor": floor})
        elif name == "exp_cosine":
            out[name] = (name, {"temperature": cfg.temperature})
        else:
            out[name] = (name, {})
    return out


def settings(cfg: SweepBenchConfig) -> list[tuple[float, float, float]]:
    grid = list(itertools.product(cfg.alphas, cfg.betas, cfg.cs))
    default = tuple(float(v) for v in cfg.default)
    if len(default) != 3:
        raise ValueError(f"default must be [alpha, beta, c], got {cfg.default}")
    return grid + ([default] if default not in grid else [])


def problems(cfg: SweepBenchConfig):
    """(description, G, q, k, truth) for every seed x noise level x number of noise heads."""
    for level, noise_heads, seed in itertools.product(cfg.noise_levels, cfg.noise_heads, cfg.seeds):
        spec = PlantedSpec(grid=(cfg.side, cfg.side), regions=cfg.regions, block=cfg.block,
                           partition_heads=cfg.partition_heads, noise_heads=noise_heads, dim=cfg.dim, shared=cfg.shared,
                           g_noise=level.g_noise, feature_noise=level.feature_noise)
        yield {"seed": seed, "noise_heads": noise_heads, **asdict(level)}, *planted_problem(spec, seed)


def spread(scores: list[float]) -> dict:
    return {"worst": min(scores), "median": statistics.median(scores), "best": max(scores)}


def run(cfg: SweepBenchConfig) -> dict:
    forms, grid = walk_forms(cfg), settings(cfg)
    scores: dict[tuple[str, tuple], list[float]] = {}
    baseline, described = [], []
    with torch_threads(cfg.threads) as threads:
        for problem, G, q, k, truth in problems(cfg):
            described.append(problem)
            baseline.append(miou(G.argmax(1), truth, cfg.regions))
            for name, (affinity, options) in forms.items():
                walks = nerve_propagate_settings(G, q, k, (cfg.side, cfg.side), settings=grid, eps_self=cfg.eps_self,
                                                 steps=cfg.steps, affinity=affinity, **options)
                for setting, P in zip(grid, walks):
                    scores.setdefault((name, setting), []).append(miou(P.argmax(1), truth, cfg.regions))
    rows = [{"form": name, "alpha": s[0], "beta": s[1], "c": s[2], **spread(values), "scores": values}
            for (name, s), values in scores.items()]
    chosen = max(rows, key=lambda r: (r["worst"], r["median"]))
    return dict(
        benchmark="sweep",
        threads=threads,
        config=asdict(cfg),
        problems=described,
        baseline={"form": "G (CLIP alone)", **spread(baseline), "scores": baseline},
        rows=rows,
        chosen={key: chosen[key] for key in ("form", "alpha", "beta", "c", "worst", "median", "best")},
    )
