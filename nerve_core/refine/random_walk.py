"""NERVE's entropy-weighted, truncated random walk (docs/method.md, "NERVE").

S^(h) = β S_global^(h) + (1 − β) S_local^(h) per head; w = softmax(−c·H) from the entropies of the
one-step walks S^(h) G; S = Σ_h w_h S^(h); P̃_0 = (1 − α) G, P̃_t = (1 − α) G + α S P̃_{t−1},
P_L = P̃_L / (1 − α^{L+1}).

Sign handling (applied identically by `nerve_closed_form`; docs/method.md, "Sign handling"): only
`cosine` has negative affinities. For head h and node i,
  - a global row the sign handling refuses (`affinity.usable_rows`: under `guard` a negative cos_ij
    or Σ_j cos_ij <= 0; under `row_sum`, the paper's signed normalisation, a row sum below
    row_floor · Σ_j |cos_ij|; any form: a zero sum) is replaced by the local transition:
    S^(h)[i] = S_local^(h)[i];
  - a local row it refuses (or eps_self = 0 with zero neighbours) by a self-loop: S_local^(h)[i] = e_i.
Under `guard` every S^(h), hence S, is row-stochastic and non-negative, P stays a probability
matrix and ‖P_∞ − P_L‖₁ <= 2·N·α^{L+1} holds. Under `row_sum` rows still sum to 1 but may have
negative entries (the paper's equations as written). The replacements are counted by
`walk_diagnostics` (and at DEBUG on logger nerve_core.refine); labeling jobs report them.

Performance: everything runs in float32 on the device of q. The entropy weights, β, α and the row
normalisers 1/d are folded into the query side, so that all heads' global terms are one
(N, H·R) @ ((H·R, N) @ P) product per step for the low-rank forms (no N×N matrix, ever), and the
heads' local stencils are merged once into one 9-tap table. A batch of images is walked as one
sequence of batched products: a step costs the same number of kernel launches for 32 images as
for one, which is what keeps the walk's fixed cost per image small on a GPU. The sign handling of
`cosine` and the diagnostics need per-row statistics of the N×N cosines: one blocked O(N²·D) pass.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from nerve_core.refine.affinity import AffinitySpec, affinity_spec, low_rank_factors, unit, usable_rows
from nerve_core.refine.checks import check_inputs, check_walk
from nerve_core.refine.closed_form import nerve_closed_form
from nerve_core.refine.entropy import entropy_weights
from nerve_core.refine.global_blocked import BlockedGlobal, CosineRows, cosine_row_stats
from nerve_core.refine.global_lowrank import LowRankGlobal
from nerve_core.refine.stencil import apply_stencil, local_affinities, local_transitions, neighbour_index

logger = logging.getLogger("nerve_core.refine")

__all__ = ["nerve_propagate", "nerve_propagate_settings", "nerve_closed_form", "entropy_weights", "head_weights",
           "walk_diagnostics"]


@dataclass
class HeadTransitions:
    """The per-head transitions S^(h) of a batch of images, kept in factored form."""

    glob: LowRankGlobal | BlockedGlobal
    local: torch.Tensor  # (B, H, N, 9) local stencils (row sums 1)
    local_fallback: torch.Tensor  # (B, H, N) bool: local rows replaced by a self-loop
    usable: torch.Tensor  # (B, H, N): 1 on global rows used as the global transition, 0 where they fall back to local
    index: torch.Tensor  # (N, 9) neighbour index of the stencil
    G: torch.Tensor  # (B, N, K) the G whose one-step walks glob.times_G holds
    cosines: CosineRows | None  # (B, H, N) cosine row statistics, when they were computed

    def global_share(self, beta: float) -> torch.Tensor:
        """(B, H, N) weight of each row's global transition in S^(h): β where usable, else 0."""
        return beta * self.usable

    def one_step(self, beta: float) -> torch.Tensor:
        """(B, H, N, K) S^(h) G for every image and head (eq. 12)."""
        share = self.global_share(beta)[..., None]
        return share * self.glob.times_G + (1 - share) * apply_stencil(self.local, self.G, self.index)


def _head_transitions(G, qh, kh, grid, eps_self, spec: AffinitySpec, scan: bool = False) -> HeadTransitions:
    """scan: also compute the cosine row statistics where the form does not need them (diagnostics)."""
    index = neighbour_index(grid, qh.device)
    local, local_fallback = local_transitions(local_affinities(qh, kh, index, spec, eps_self), spec)
    cosines = cosine_row_stats(qh, kh) if scan or spec.form == "cosine" else None
    if spec.low_rank:
        phi, psi = low_rank_factors(qh, kh, spec)

        def usable_of(row_sums):
            return usable_rows(row_sums, cosines.minimum, cosines.absolute, spec) if spec.form == "cosine" else row_sums > 0

        glob = LowRankGlobal(phi, psi, G, usable_of)
    else:
        glob = BlockedGlobal(qh, kh, spec, G)
    logger.debug(
        "%s affinity (%s): %d global rows fell back to the local transition and %d local rows to a self-loop, "
        "out of %d images x %d heads x %d nodes", spec.form, spec.sign_handling, int((~glob.usable).sum()),
        int(local_fallback.sum()), *qh.shape[:3],
    )
    return HeadTransitions(glob, local, local_fallback, glob.usable.to(qh.dtype), index, G, cosines)


def _prepare(G, q, k):
    """float32 on q's device, whatever came in; q and k unit-normalised per head and node; a
    leading batch axis added to unbatched inputs."""
    device = q.device
    G, q, k = (G[None], q[None], k[None]) if G.ndim == 2 else (G, q, k)
    return G.to(device, torch.float32), unit(q.to(device, torch.float32)), unit(k.to(device, torch.float32))


def head_weights(G, q, k, grid, *, beta, c, eps_self, affinity="cosine", **affinity_options) -> torch.Tensor:
    """(H,) entropy weights w (eq. 13-14) of the heads, as nerve_propagate uses them ((B, H) for a batch)."""
    spec = affinity_spec(affinity, affinity_options)
    check_inputs(G, q, k, grid)
    check_walk(0.0, beta, eps_self)
    w = entropy_weights(_head_transitions(*_prepare(G, q, k), grid, eps_self, spec).one_step(beta), c)
    return w if G.ndim == 3 else w[0]


def walk_diagnostics(G, q, k, grid, *, beta, c, eps_self, affinity="cosine", P=None, **affinity_options):
    """What the walk did with each head, as plain floats: a dict for one image, a list of dicts for a batch.

    head_weights: w_h (eq. 14); negative_fraction: share of the head's N² cosines that are < 0;
    global_rows_kept: share of its global rows used as the global transition (the rest fell back to
    the local one); local_rows_kept: the same for its local rows (the rest became self-loops);
    each a list of H floats. With P (the walk's output for this G), mass_moved: the mean over nodes
    of Σ_k |P_ik − G_ik| (0: the walk changed nothing; 2: every node's mass moved to other classes).
    """
    spec = affinity_spec(affinity, affinity_options)
    check_inputs(G, q, k, grid)
    check_walk(0.0, beta, eps_self)
    Gb, qh, kh = _prepare(G, q, k)
    heads = _head_transitions(Gb, qh, kh, grid, eps_self, spec, scan=True)
    w = entropy_weights(heads.one_step(beta), c)
    Pb = None if P is None else P.reshape(Gb.shape).to(Gb.device, torch.float32)
    out = _diagnostics(heads, w, Gb, Pb)
    return out if G.ndim == 3 else out[0]


def _diagnostics(heads: HeadTransitions, w: torch.Tensor, G: torch.Tensor, P: torch.Tensor | None) -> list[dict]:
    """Per image of the batch, the dict walk_diagnostics describes."""
    n = G.shape[1]
    figures = {
        "head_weights": w,
        "negative_fraction": heads.cosines.negatives.double().sum(-1) / n**2,
        "global_rows_kept": heads.glob.usable.double().mean(-1),
        "local_rows_kept": (~heads.local_fallback).double().mean(-1),
    }
    if P is not None:
        figures["mass_moved"] = (P.double() - G.double()).abs().sum(-1).mean(-1)
    return [{key: value[b].tolist() for key, value in figures.items()} for b in range(G.shape[0])]


def nerve_propagate(G, q, k, grid, *, alpha, beta, c, eps_self, steps, affinity="cosine", diagnostics=False,
                    **affinity_options):
    """(N, K) float32 label probabilities P_L of the truncated walk, on q's device.

    G (N, K) row-stochastic; q, k (H, N, D) raw per-head queries and keys; grid (h, w), row-major.
    affinity_options: temperature, power, features, block_size, seed, sign_handling, row_floor
    (see AffinitySpec). A batch of images on one grid and with one K, G (B, N, K) and q, k
    (B, H, N, D), gives (B, N, K), each image walked on its own (the same result as one call per
    image), in one sequence of batched products: the per-call cost is paid once per batch, not once
    per image. The exact sharp forms are walked image by image (their O(N²) steps gain nothing from
    batching, and each image's dense operator then fits in memory on its own).
    diagnostics=True returns (P, walk_diagnostics of the same walk, with mass_moved) from one pass.
    """
    spec = affinity_spec(affinity, affinity_options)
    check_inputs(G, q, k, grid)
    check_walk(alpha, beta, eps_self, steps)
    walk = dict(alpha=alpha, beta=beta, c=c, eps_self=eps_self, steps=steps, spec=spec, diagnostics=diagnostics)
    if G.ndim == 3 and not spec.low_rank:
        per_image = [_walk(*_prepare(G[b], q[b], k[b]), grid, **walk) for b in range(G.shape[0])]
        P = torch.stack([P[0] for P, _ in per_image])
        found = [d[0] for _, d in per_image] if diagnostics else None
    else:
        P, found = _walk(*_prepare(G, q, k), grid, **walk)
        if G.ndim == 2:
            P, found = P[0], found and found[0]
    return (P, found) if diagnostics else P


def nerve_propagate_settings(G, q, k, grid, *, settings, eps_self, steps, affinity="cosine", **affinity_options):
    """[P_L for (alpha, beta, c) in settings]: nerve_propagate at several settings of one input,
    sharing the per-head transitions (the cosine pass, the local stencils, the sharp forms' rows),
    which depend on neither. What `nerve bench sweep` walks."""
    spec = affinity_spec(affinity, affinity_options)
    check_inputs(G, q, k, grid)
    for alpha, beta, _ in settings:
        check_walk(alpha, beta, eps_self, steps)
    Gb, qh, kh = _prepare(G, q, k)
    heads = _head_transitions(Gb, qh, kh, grid, eps_self, spec)
    walks = [_walk_heads(heads, alpha=alpha, beta=beta, c=c, steps=steps)[0] for alpha, beta, c in settings]
    return walks if G.ndim == 3 else [P[0] for P in walks]


def _walk(G, qh, kh, grid, *, alpha, beta, c, eps_self, steps, spec: AffinitySpec, diagnostics=False):
    """((B, N, K) P_L, per-image diagnostics or None) for prepared, batched inputs."""
    heads = _head_transitions(G, qh, kh, grid, eps_self, spec, scan=diagnostics)
    P, w = _walk_heads(heads, alpha=alpha, beta=beta, c=c, steps=steps)
    return P, (_diagnostics(heads, w, G, P) if diagnostics else None)


def _walk_heads(heads: HeadTransitions, *, alpha, beta, c, steps) -> tuple[torch.Tensor, torch.Tensor]:
    """((B, N, K) P_L, (B, H) entropy weights) of the walk on prepared head transitions."""
    w = entropy_weights(heads.one_step(beta), c)  # (B, H)
    share = heads.global_share(beta)
    global_op = heads.glob.combined(alpha * w[..., None] * share)
    local_table = alpha * torch.einsum("bh,bhn,bhnt->bnt", w, 1 - share, heads.local)
    base = (1 - alpha) * heads.G
    P = base
    for _ in range(int(steps)):
        P = base + global_op(P) + apply_stencil(local_table, P, heads.index)
    return P / (1 - alpha ** (steps + 1)), w
