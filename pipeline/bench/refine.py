"""`nerve bench refine`: NERVE's low-rank walk vs the same walk built densely vs iSeg's dense propagation.

For every node count N (a square grid) and class count K it times each method and measures its peak
memory, fits how both grow with N (the exponent of a power law), and runs every global-affinity
form: the sharp ones exact in row blocks, exp_cosine also with random features of a few ranks,
each with its error against the exact result (the dense walk of the same form where it fits in the
memory budget, else the exact block form). Dense methods whose N x N matrices would exceed the
budget are skipped and say so. With `images`, the low-rank walk is also timed on B images walked in
one batched call (seconds per image), against the same walk one image at a time. The low-rank
rows also count the ATen compute ops per image (`ops`: kernel launches on a GPU).

Inputs are synthetic but shaped like the engine's: H heads of D-dim q, k on an h x w grid, built
as noisy copies of a few per-segment prototypes over blob-shaped segments (so affinities have the
block structure of real images), passed through softplus so every entry, hence every cosine, is > 0 and no sign guard
changes the equations under comparison; G is a softmax of random logits.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from nerve_core.config import RefineConfig
from nerve_core.devices import resolve_device
from pipeline.bench.dense_walk import dense_walk, dense_walk_bytes
from pipeline.bench.measure import peak_memory, time_call, torch_threads
from pipeline.bench.ops import count_ops

# The engine's dense refiners, called through the registry exactly as the engine calls them.
REGISTRY_METHODS = ("iseg", "dslo_optimal_path", "dslo_max_velocity")
METHODS = ("lowrank", "dense", *REGISTRY_METHODS)
FORMS = ("cosine", "shifted_cosine", "relu_cosine", "exp_cosine")


@dataclass
class RefineBenchConfig:
    output: str = "bench-results/refine"
    device: str = "auto"
    threads: int = 0  # CPU threads for torch; 0 = torch's default
    # Node counts N = side²: the README's full sweep is [1024, 2304, 4096, 9216, 16384].
    sizes: list[int] = field(default_factory=lambda: [256, 576, 1024])
    classes: list[int] = field(default_factory=lambda: [21])  # README's full sweep: [21, 81, 171]
    heads: int = 10  # H: NERVE captures 2 layers x 5 heads
    dim: int = 64  # D per head (SD2.1 at 64x64)
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    forms: list[str] = field(default_factory=lambda: list(FORMS))
    ranks: list[int] = field(default_factory=lambda: [64, 256])  # exp_cosine random-feature ranks
    images: list[int] = field(default_factory=lambda: [1])  # low-rank walk: also B images in one call
    # Dense methods whose working set would exceed this are skipped (the row says so).
    max_dense_bytes: int = 2 * 1024**3
    repeats: int = 1  # timed runs per point after one untimed warm-up; the median is reported
    segments: int = 6  # prototypes per head in the synthetic features
    seed: int = 0
    # Agreement required of the low-rank walk with the dense one (max |ΔP|, float32).
    tolerance: float = 1e-4
    walk: RefineConfig = field(default_factory=RefineConfig)  # alpha, beta, c, eps_self, steps, ...


@dataclass
class Case:
    method: str
    form: str  # the global-affinity form ("-" for the registry refiners, which have their own)
    features: int = 0  # exp_cosine random-feature rank; 0 = exact
    images: int = 1  # images walked in one batched call (low-rank walk only)

    @property
    def name(self) -> str:
        if self.method in REGISTRY_METHODS:
            return self.method
        return f"{self.method}/{self.form}" + (f"/rf{self.features}" if self.features else "") + (
            f"/x{self.images}" if self.images > 1 else "")


def cases(cfg: RefineBenchConfig) -> list[Case]:
    for name in cfg.methods:
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r}; expected some of {METHODS}")
    for form in cfg.forms:
        if form not in FORMS:
            raise ValueError(f"unknown affinity form {form!r}; expected some of {FORMS}")
    out = []
    if "lowrank" in cfg.methods:
        single = [Case("lowrank", form) for form in cfg.forms]
        if "exp_cosine" in cfg.forms:
            single += [Case("lowrank", "exp_cosine", r) for r in cfg.ranks]
        out += single + [replace(case, images=b) for b in cfg.images if b > 1 for case in single]
    if "dense" in cfg.methods:
        out += [Case("dense", form) for form in cfg.forms]
    out += [Case(name, "-") for name in REGISTRY_METHODS if name in cfg.methods]
    return out


def grid_for(n: int) -> tuple[int, int]:
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"node count {n} is not a square grid (side² = N)")
    return side, side


def synthetic_inputs(n: int, num_classes: int, cfg: RefineBenchConfig, device) -> tuple:
    """(G (N, K), q, k (H, N, D), grid): segment-structured non-negative features, random G."""
    grid = grid_for(n)
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + n)
    coarse = torch.randint(cfg.segments, (cfg.heads, 1, 4, 4), generator=gen).float()
    segment = torch.nn.functional.interpolate(coarse, size=grid, mode="nearest").long().reshape(cfg.heads, n)
    prototypes = torch.randn(cfg.heads, cfg.segments, cfg.dim, generator=gen)
    base = torch.gather(prototypes, 1, segment[..., None].expand(-1, -1, cfg.dim))
    q = F.softplus(base + 0.5 * torch.randn(base.shape, generator=gen))
    k = F.softplus(base + 0.5 * torch.randn(base.shape, generator=gen))
    G = torch.softmax(2.0 * torch.randn(n, num_classes, generator=gen), dim=1)
    return G.to(device), q.to(device), k.to(device), grid


def dense_bytes(case: Case, n: int) -> int:
    """Working memory a dense method needs at N nodes (0 for the low-rank walk).

    Both dense methods hold about three N x N float32 matrices at once (the dense walk: S, one
    head's S^(h) and a temporary; iSeg: the averaged attention, one head's logits and its softmax).
    """
    return 0 if case.method == "lowrank" else dense_walk_bytes(n)


def run_case(case: Case, G, q, k, grid, cfg: RefineBenchConfig):
    """The (N, K) refined probabilities of one method on one input (of the first image of a batch)."""
    w = cfg.walk
    walk = dict(alpha=w.alpha, beta=w.beta, c=w.c, eps_self=w.eps_self, steps=w.steps)
    if case.method == "lowrank":
        from nerve_core.refine.random_walk import nerve_propagate

        options = dict(temperature=w.temperature, power=w.power, block_size=w.block_size)
        if case.features:
            options.update(features=case.features, seed=cfg.seed)
        if case.images > 1:  # the same image B times: the batched call does B images' work
            batch = [x.expand(case.images, *x.shape) for x in (G, q, k)]
            return nerve_propagate(*batch, grid, affinity=case.form, **walk, **options)[0]
        return nerve_propagate(G, q, k, grid, affinity=case.form, **walk, **options)
    if case.method == "dense":
        return dense_walk(G, q, k, grid, form=case.form, temperature=w.temperature, power=w.power, **walk)
    from nerve_core.refine import get_refiner
    from nerve_core.sd.features import LayerQK

    layer = LayerQK(name="synthetic", q=q, k=k, grid=grid)
    scores = get_refiner(case.method).fn(G.T.reshape(-1, *grid), [layer], w)  # (K, h, w), as the engine calls it
    return scores.reshape(scores.shape[0], -1).T


def _timed(case, inputs, cfg, device) -> tuple[float, int | None, str, int | None, torch.Tensor]:
    """(median seconds, peak bytes, memory method, ATen ops, result): timed runs, one memory-probe
    run and, for the low-rank walk (the engine's), one run counting its ops."""
    def call():
        return run_case(case, *inputs, cfg)

    with torch.inference_mode():
        call()  # warm-up: kernels, allocator, lazy imports
        runs = [time_call(call, device) for _ in range(max(1, cfg.repeats))]
        peak, method = peak_memory(call, device)
        ops = count_ops(call) if case.method == "lowrank" else None
    return float(np.median([seconds for seconds, _ in runs])), peak, method, ops, runs[-1][1]


def _reference(case: Case, results: dict) -> tuple[str | None, torch.Tensor | None]:
    """The exact result a low-rank case is compared with: the dense walk of its form, else its exact block form."""
    if case.method != "lowrank":
        return None, None
    for ref in (Case("dense", case.form), Case("lowrank", case.form)):
        if ref.name != case.name and ref.name in results:
            return ref.name, results[ref.name]
    return None, None


def bench_point(n: int, num_classes: int, cfg: RefineBenchConfig, device) -> list[dict]:
    """Every case at one (N, K); references run first so that errors can be computed."""
    inputs = synthetic_inputs(n, num_classes, cfg, device)
    order = sorted(cases(cfg), key=lambda c: (c.method != "dense", c.features != 0))
    results, rows = {}, []
    for case in order:
        row = dict(method=case.method, form=case.form, features=case.features, images=case.images, case=case.name,
                   N=n, K=num_classes)
        need = dense_bytes(case, n)
        if need > cfg.max_dense_bytes:
            row.update(status=f"skipped: needs {need / 2**30:.1f} GiB > max_dense_bytes {cfg.max_dense_bytes / 2**30:.1f} GiB")
            rows.append(row)
            continue
        seconds, peak, method, ops, P = _timed(case, inputs, cfg, device)
        results[case.name] = P
        # seconds and ops per image; peak memory of the whole call
        row.update(status="ok", seconds=seconds / case.images, peak_bytes=peak, memory_method=method,
                   estimated_bytes=need or None, ops_per_image=None if ops is None else ops / case.images)
        ref_name, ref = _reference(case, results)
        if ref is not None:
            diff = (P.float() - ref.float()).abs()
            row.update(reference=ref_name, max_abs_error=float(diff.max()), mean_row_l1_error=float(diff.sum(1).mean()))
        rows.append(row)
    return rows


def fit_exponent(ns: list[float], values: list[float]) -> float | None:
    """Least-squares slope of log(value) on log(N): value ∝ N^slope."""
    pairs = [(n, v) for n, v in zip(ns, values) if v is not None and v > 0]
    if len(pairs) < 2 or len({n for n, _ in pairs}) < 2:
        return None
    x, y = np.log([p[0] for p in pairs]), np.log([p[1] for p in pairs])
    return float(np.polyfit(x, y, 1)[0])


def exponents(rows: list[dict]) -> list[dict]:
    """Per case and K: how time and peak memory grow with N."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        if row["status"] == "ok":
            groups.setdefault((row["case"], row["K"]), []).append(row)
    out = []
    for (name, num_classes), group in sorted(groups.items()):
        ns = [r["N"] for r in group]
        out.append(
            dict(
                case=name,
                K=num_classes,
                sizes=ns,
                time_exponent=fit_exponent(ns, [r["seconds"] for r in group]),
                memory_exponent=fit_exponent(ns, [r["peak_bytes"] for r in group]),
            )
        )
    return out


def cross_check(rows: list[dict], tolerance: float) -> dict:
    """Does the low-rank walk reproduce the dense walk (same form, exact affinity) at every N where both ran?"""
    checked = [r for r in rows if r.get("reference", "").startswith("dense/") and r["features"] == 0]
    worst = max((r["max_abs_error"] for r in checked), default=None)
    return dict(
        compared=[dict(case=r["case"], N=r["N"], K=r["K"], max_abs_error=r["max_abs_error"]) for r in checked],
        max_abs_error=worst,
        tolerance=tolerance,
        agree=None if worst is None else worst <= tolerance,
    )


def run(cfg: RefineBenchConfig) -> dict:
    device = resolve_device(cfg.device)
    with torch_threads(cfg.threads) as threads:
        rows = [row for n in cfg.sizes for num_classes in cfg.classes for row in bench_point(n, num_classes, cfg, device)]
    return dict(
        benchmark="refine",
        device=str(device),
        device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        threads=threads,
        config=asdict(cfg),
        runs=rows,
        exponents=exponents(rows),
        cross_check=cross_check(rows, cfg.tolerance),
    )
