"""The pair affinities a_ij of NERVE's random walk (docs/method.md, "Affinity forms").

Every form is a function of one head's cosine cos_ij = q̂_i·k̂_j between unit-normalised query i and
key j. `cosine` (the paper) and `shifted_cosine` are exactly low rank, so their transition matrices
are applied through factors and never formed; `relu_cosine` and `exp_cosine` are sharp and
non-negative but not low rank, so they are exact in row blocks, or (exp_cosine only) approximated
by positive random features, which makes them low rank again.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

FORMS = ("cosine", "shifted_cosine", "relu_cosine", "exp_cosine")
# How a row with negative affinities (only `cosine` has them) becomes a transition (docs/method.md,
# "Sign handling"): guard = a row with any negative entry falls back; row_sum = the paper's signed row
# normalisation, falling back only where the row sum is not clearly positive (below row_floor times
# the row's absolute sum).
SIGN_HANDLINGS = ("guard", "row_sum")


@dataclass(frozen=True)
class AffinitySpec:
    """A validated affinity form with its options (the `**affinity_options` of nerve_propagate)."""

    form: str
    temperature: float = 0.1  # tau of exp_cosine
    power: float = 1.0  # p of relu_cosine
    features: int = 0  # exp_cosine: 0 = exact; r > 0 = rank-r positive random features
    block_size: int = 1024  # rows per block for the exact sharp forms
    seed: int = 0  # draw of the random features
    sign_handling: str = "guard"  # guard | row_sum (SIGN_HANDLINGS)
    row_floor: float = 0.1  # row_sum: a row is used iff Σ_j a_ij >= row_floor · Σ_j |a_ij|

    @property
    def low_rank(self) -> bool:
        """Whether a_ij = φ(q̂_i)·ψ(k̂_j) with a small feature dimension."""
        return self.form in ("cosine", "shifted_cosine") or self.features > 0


def affinity_spec(form: str, options: dict) -> AffinitySpec:
    """Check the form name and options; unknown or inconsistent ones are errors, never ignored."""
    known = [f.name for f in fields(AffinitySpec) if f.name != "form"]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"unknown affinity options {unknown}; known: {known}")
    if form not in FORMS:
        raise ValueError(f"unknown affinity {form!r}; available: {', '.join(FORMS)}")
    spec = AffinitySpec(form, **options)
    if not spec.temperature > 0:
        raise ValueError(f"temperature must be > 0, got {spec.temperature}")
    if not spec.power > 0:
        raise ValueError(f"power must be > 0, got {spec.power}")
    if int(spec.features) != spec.features or spec.features < 0:
        raise ValueError(f"features must be a non-negative integer, got {spec.features}")
    if spec.features and form != "exp_cosine":
        raise ValueError(f"features={spec.features} (random features) applies to exp_cosine only, not {form}")
    if int(spec.block_size) != spec.block_size or spec.block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {spec.block_size}")
    if spec.sign_handling not in SIGN_HANDLINGS:
        raise ValueError(f"unknown sign_handling {spec.sign_handling!r}; available: {', '.join(SIGN_HANDLINGS)}")
    if not 0 < spec.row_floor <= 1:
        raise ValueError(f"row_floor must be in (0, 1], got {spec.row_floor}")
    return spec


def usable_rows(row_sums: torch.Tensor, minimum: torch.Tensor, absolute: torch.Tensor, spec: AffinitySpec) -> torch.Tensor:
    """Which affinity rows become transitions, from each row's sum, smallest entry and absolute sum.

    guard: no negative entry and a positive sum (the row is a probability vector once normalised).
    row_sum: a positive sum of at least row_floor times the absolute sum, so that the normalised
    row's entries have an L1 norm of at most 1 / row_floor. For non-negative rows both reduce to
    "positive sum".
    """
    positive = row_sums > 0
    if spec.sign_handling == "guard":
        return positive & (minimum >= 0)
    return positive & (row_sums >= spec.row_floor * absolute)


def unit(x: torch.Tensor) -> torch.Tensor:
    """Unit-normalise the last axis; a zero vector stays zero (cosine 0 with everything)."""
    return F.normalize(x, dim=-1, eps=1e-12)


def pair_affinity(cos: torch.Tensor, spec: AffinitySpec, *, up_to_scale: bool = False) -> torch.Tensor:
    """a_ij from cos_ij, elementwise.

    up_to_scale=True may return a constant multiple of a_ij: enough for rows that are normalised
    on their own (the global term), and it keeps exp_cosine in range: exp((cos - 1)/τ) <= 1.
    """
    if spec.form == "cosine":
        return cos
    if spec.form == "shifted_cosine":
        return (1 + cos) / 2
    if spec.form == "relu_cosine":
        positive = cos.clamp_min(0)
        return positive if spec.power == 1 else positive**spec.power
    return torch.exp(((cos - 1) if up_to_scale else cos) / spec.temperature)


def low_rank_factors(qh: torch.Tensor, kh: torch.Tensor, spec: AffinitySpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(φ, ψ), each (..., H, N, R), with a_ij = φ_i·ψ_j for every head, for the low-rank forms."""
    if spec.form == "cosine":
        return qh, kh
    if spec.form == "shifted_cosine":
        # (1 + q̂·k̂)/2 = [1, q̂]/√2 · [1, k̂]/√2: rank D + 1.
        ones = qh.new_ones(*qh.shape[:-1], 1)
        return torch.cat([ones, qh], -1) / math.sqrt(2), torch.cat([ones, kh], -1) / math.sqrt(2)
    if spec.features:
        return random_feature_maps(qh, kh, spec)
    raise ValueError(f"{spec.form} without random features is not low rank")


def random_feature_maps(qh: torch.Tensor, kh: torch.Tensor, spec: AffinitySpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive random features with E[φ(q̂)·ψ(k̂)] = exp(q̂·k̂/τ), rank r = spec.features.

    For x = q̂/√τ, y = k̂/√τ (|x|² = |y|² = 1/τ: the unit norm makes every correction a constant)
    and ω ~ N(0, I_D), any s >= 0 gives an unbiased positive estimator (derivation: Gaussian
    integral of exp(-s|ω|²/4 + b ω·(x+y)) with b² = 1 + s/2):
        f(ω, x) = (1 + s/2)^{D/4} exp(-s|ω|²/8 + √(1 + s/2) ω·x - |x|²/2).
    s = 0 is FAVOR+; its relative second moment at the most similar pairs (|x+y|² = 4/τ) is
    exp(4/τ), while s > 0 gives (1 + s²/(4(1+s)))^{D/2} exp(4/(τ(1+s))): `_variance_optimal_s`
    minimises it. The estimator stays noisy for sharp τ (e.g. τ = 0.1, D = 64): prefer the exact
    form there. Every feature is positive, so row sums are positive and need no sign guard.
    One independent draw per head, from `seed` on the CPU, so any device (and every image of a
    batch (..., H, N, D)) gets the same features.
    """
    heads, dim = qh.shape[-3], qh.shape[-1]
    generator = torch.Generator().manual_seed(int(spec.seed))
    omega = torch.stack([_orthogonal_gaussian(spec.features, dim, generator) for _ in range(heads)])
    omega = omega.to(device=qh.device, dtype=qh.dtype)
    s = _variance_optimal_s(dim, spec.temperature)
    projection = omega.transpose(1, 2) * math.sqrt((1 + s / 2) / spec.temperature)
    offset = (dim / 4) * math.log1p(s / 2) - 1 / (2 * spec.temperature) - 0.5 * math.log(spec.features)
    shift = offset - (s / 8) * (omega * omega).sum(-1)[:, None, :]

    def features(x):
        return torch.exp(x @ projection + shift)

    return features(qh), features(kh)


def _variance_optimal_s(dim: int, temperature: float) -> float:
    """argmin over s >= 0 of the log relative second moment at |x+y|² = 4/τ (a 1-D grid search)."""
    s = torch.logspace(-4, 4, 4001, dtype=torch.float64)
    log_moment = (dim / 2) * torch.log1p(s**2 / (4 * (1 + s))) + (4 / temperature) / (1 + s)
    best = int(log_moment.argmin())
    return 0.0 if log_moment[best] >= 4 / temperature else float(s[best])


def _orthogonal_gaussian(rows: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """`rows` Gaussian directions, orthogonal within each block of `dim`, with chi(dim) lengths.

    Each row is still marginally N(0, I) (so the estimator stays unbiased) while orthogonality
    within a block lowers its variance (Choromanski et al., FAVOR+).
    """
    blocks = math.ceil(rows / dim)
    basis, upper = torch.linalg.qr(torch.randn(blocks, dim, dim, generator=generator, dtype=torch.float64))
    # QR's sign convention ties column signs to the input's entries; a positive diagonal of R
    # makes the factorisation unique, so Q is Haar and each column uniform on the sphere.
    basis = basis * torch.sign(torch.diagonal(upper, dim1=-2, dim2=-1))[:, None, :]
    lengths = torch.randn(blocks, dim, dim, generator=generator, dtype=torch.float64).norm(dim=-1)
    return (basis.transpose(1, 2) * lengths[..., None]).reshape(blocks * dim, dim)[:rows]
