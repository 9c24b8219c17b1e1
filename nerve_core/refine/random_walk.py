"""NERVE's entropy-weighted, truncated random walk (METHOD.md section 1, steps 3-5).

S^(h) = β S_global^(h) + (1 − β) S_local^(h) per head; w = softmax(−c·H) from the entropies of the
one-step walks S^(h) G; S = Σ_h w_h S^(h); P̃_0 = (1 − α) G, P̃_t = (1 − α) G + α S P̃_{t−1},
P_L = P̃_L / (1 − α^{L+1}).

Sign guard (a modification of S, applied identically by `nerve_closed_form`): an affinity row is
usable iff all its entries are >= 0 and its sum is > 0. For head h and node i,
  - an unusable global row (only `cosine` can have one: a negative cos_ij or Σ_j cos_ij <= 0;
    the other forms only through a zero sum) is replaced by the local transition:
    S^(h)[i] = S_local^(h)[i];
  - an unusable local row (negative neighbour cosine, or eps_self = 0 with zero neighbours) is
    replaced by a self-loop: S_local^(h)[i] = e_i.
Every S^(h), hence S, is then row-stochastic and non-negative: P stays a probability matrix,
entropies are finite, and ‖P_∞ − P_L‖₁ <= 2·N·α^{L+1} holds. Any replacement is reported by one
warning per call.

Performance: everything runs in float32 on the device of q. The entropy weights, β, α and the row
normalisers 1/d are folded into the query side, so that all heads' global terms are one
(N, H·R) @ ((H·R, N) @ P) product per step for the low-rank forms (no N×N matrix, ever), and the
heads' local stencils are merged once into one 9-tap table. A batch of images is walked as one
sequence of batched products: a step costs the same number of kernel launches for 32 images as
for one, which is what keeps the walk's fixed cost per image small on a GPU.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import torch

from nerve_core.refine.affinity import AffinitySpec, affinity_spec, low_rank_factors, unit
from nerve_core.refine.checks import check_inputs, check_walk
from nerve_core.refine.closed_form import nerve_closed_form
from nerve_core.refine.entropy import entropy_weights
from nerve_core.refine.global_blocked import BlockedGlobal, row_minimum_cosines
from nerve_core.refine.global_lowrank import LowRankGlobal
from nerve_core.refine.stencil import apply_stencil, local_affinities, local_transitions, neighbour_index

logger = logging.getLogger("nerve_core.refine")

__all__ = ["nerve_propagate", "nerve_closed_form", "entropy_weights", "head_weights"]


@dataclass
class HeadTransitions:
    """The guarded per-head transitions S^(h) of a batch of images, kept in factored form."""

    glob: LowRankGlobal | BlockedGlobal
    local: torch.Tensor  # (B, H, N, 9) row-stochastic local stencils
    global_share: torch.Tensor  # (B, H, N): β on usable global rows, 0 where the row falls back to local
    index: torch.Tensor  # (N, 9) neighbour index of the stencil
    G: torch.Tensor  # (B, N, K) the G whose one-step walks glob.times_G holds

    def one_step(self) -> torch.Tensor:
        """(B, H, N, K) S^(h) G for every image and head (eq. 12)."""
        share = self.global_share[..., None]
        return share * self.glob.times_G + (1 - share) * apply_stencil(self.local, self.G, self.index)


def _head_transitions(G, qh, kh, grid, beta, eps_self, spec: AffinitySpec) -> HeadTransitions:
    index = neighbour_index(grid, qh.device)
    local, local_fallback = local_transitions(local_affinities(qh, kh, index, spec, eps_self))
    if spec.low_rank:
        phi, psi = low_rank_factors(qh, kh, spec)
        no_negative = row_minimum_cosines(qh, kh) >= 0 if spec.form == "cosine" else None
        glob = LowRankGlobal(phi, psi, G, no_negative)
    else:
        glob = BlockedGlobal(qh, kh, spec, G)
    replaced_global, replaced_local = int((~glob.usable).sum()), int(local_fallback.sum())
    if replaced_global or replaced_local:
        # One fixed text per form, so Python's warning filter reports it once per process rather
        # than once per image of a labeling job; the counts of every call go to the log.
        warnings.warn(
            f"{spec.form} affinity: global rows with a negative entry or a sum <= 0 fell back to the local "
            "transition, local rows with one fell back to a self-loop (counts: logger nerve_core.refine, DEBUG)",
            RuntimeWarning,
            stacklevel=4,
        )
        logger.debug(
            "%s affinity: %d global rows fell back to the local transition and %d local rows to a self-loop, "
            "out of %d images x %d heads x %d nodes", spec.form, replaced_global, replaced_local, *qh.shape[:3],
        )
    return HeadTransitions(glob, local, beta * glob.usable.to(qh.dtype), index, G)


def _prepare(G, q, k):
    """float32 on q's device, whatever came in; q and k unit-normalised per head and node; a
    leading batch axis added to unbatched inputs."""
    device = q.device
    G, q, k = (G[None], q[None], k[None]) if G.ndim == 2 else (G, q, k)
    return G.to(device, torch.float32), unit(q.to(device, torch.float32)), unit(k.to(device, torch.float32))


def head_weights(G, q, k, grid, *, beta, c, eps_self, affinity="cosine", **affinity_options) -> torch.Tensor:
    """(H,) entropy weights w (eq. 13-14) of the guarded heads, as nerve_propagate uses them
    ((B, H) for a batch)."""
    spec = affinity_spec(affinity, affinity_options)
    check_inputs(G, q, k, grid)
    check_walk(0.0, beta, eps_self)
    w = entropy_weights(_head_transitions(*_prepare(G, q, k), grid, beta, eps_self, spec).one_step(), c)
    return w if G.ndim == 3 else w[0]


def nerve_propagate(G, q, k, grid, *, alpha, beta, c, eps_self, steps, affinity="cosine", **affinity_options):
    """(N, K) float32 label probabilities P_L of the truncated walk, on q's device.

    G (N, K) row-stochastic; q, k (H, N, D) raw per-head queries and keys; grid (h, w), row-major.
    affinity_options: temperature, power, features, block_size, seed (see AffinitySpec).
    A batch of images on one grid and with one K, G (B, N, K) and q, k (B, H, N, D), gives
    (B, N, K), each image walked on its own (the same result as one call per image), in one
    sequence of batched products: the per-call cost is paid once per batch, not once per image.
    The exact sharp forms are walked image by image (their O(N²) steps gain nothing from
    batching, and each image's dense operator then fits in memory on its own).
    """
    spec = affinity_spec(affinity, affinity_options)
    check_inputs(G, q, k, grid)
    check_walk(alpha, beta, eps_self, steps)
    walk = dict(alpha=alpha, beta=beta, c=c, eps_self=eps_self, steps=steps, spec=spec)
    if G.ndim == 3 and not spec.low_rank:
        return torch.stack([_walk(*_prepare(G[b], q[b], k[b]), grid, **walk)[0] for b in range(G.shape[0])])
    P = _walk(*_prepare(G, q, k), grid, **walk)
    return P if G.ndim == 3 else P[0]


def _walk(G, qh, kh, grid, *, alpha, beta, c, eps_self, steps, spec: AffinitySpec) -> torch.Tensor:
    """(B, N, K) P_L for prepared, batched inputs."""
    heads = _head_transitions(G, qh, kh, grid, beta, eps_self, spec)
    w = entropy_weights(heads.one_step(), c)  # (B, H)
    global_op = heads.glob.combined(alpha * w[..., None] * heads.global_share)
    local_table = alpha * torch.einsum("bh,bhn,bhnt->bnt", w, 1 - heads.global_share, heads.local)
    base = (1 - alpha) * G
    P = base
    for _ in range(int(steps)):
        P = base + global_op(P) + apply_stencil(local_table, P, heads.index)
    return P / (1 - alpha ** (steps + 1))
