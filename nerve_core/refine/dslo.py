"""DSLO refiners (docs/method.md, "DSLO"): optimal path and maximum velocity.

Both start from the CLIP class probabilities resampled to the finest attention grid, suppress
low-confidence patches (NMS: probability < `nms_threshold` -> logit -inf -> probability 0) and
normalise each class map to a distribution over patches, p_c. Both measure how p_c degrades to
the uniform ("degenerate") distribution under the layer-averaged SD self-attention A.

Choices where the paper's text lost the rule (all recorded in RefineConfig):
- Cost of the optimal path: C = 1 - A / rowmax(A), in [0, 1], so that the paper's ε = 0.1 gives
  a Gibbs kernel exp(-C/ε) in [e^-10, 1] (no underflow, no log domain needed).
- Optimal-path class score of patch j: N Σ_i P_ij (1 - C_ij), the affinity between j and the
  patches that supply j's mass in the plan P from p_c to uniform, in [0, 1] (higher = class c).
- Velocity: a patch converges at the first step s where its *relative* change
  |f_s - f_{s-1}| / max(f_s, f_{s-1}) falls below τ (an absolute change would call every patch
  the class never reaches "converged" at once); with `velocity_fractional` the step is
  interpolated linearly between s-1 and s where the ratio crosses τ, which breaks the integer ties
  between classes; velocity = 1 / step; patches that never converge get 1 / (max_steps + 1).
- Classes with no patch above the threshold score 0 everywhere.
"""
from __future__ import annotations

import torch

from nerve_core.refine.attention import layer_averaged_attention, scores_on_grid
from nerve_core.refine.ipf import ipf_doubly_stochastic
from nerve_core.refine.sinkhorn import sinkhorn_scalings


def nms_normalise(probs: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, N) probabilities -> (per-class distributions over patches (K, N), present (K,) bool).

    Equal to a softmax over patches of log-probabilities whose sub-threshold entries are -inf.
    """
    kept = torch.where(probs >= threshold, probs, torch.zeros_like(probs))
    mass = kept.sum(dim=1, keepdim=True)
    return kept / mass.clamp_min(torch.finfo(kept.dtype).tiny), mass[:, 0] > 0


def optimal_path_scores(attention: torch.Tensor, p: torch.Tensor, epsilon: float, iterations: int) -> torch.Tensor:
    """(K, N) optimal-path scores of the class distributions p (K, N) under attention (N, N)."""
    n = attention.shape[0]
    affinity = attention / attention.amax(dim=1, keepdim=True).clamp_min(torch.finfo(attention.dtype).tiny)
    kernel = torch.exp((affinity - 1.0) / epsilon)  # exp(-C / ε), C = 1 - affinity
    uniform = torch.full((n,), 1.0 / n, dtype=p.dtype, device=p.device)
    u, v = sinkhorn_scalings(kernel, p.T.contiguous(), uniform, iterations)
    weighted = kernel.mul_(affinity)  # K ⊙ (1 - C); the kernel is not needed any more
    del affinity
    return (n * v * (weighted.T @ u)).T.clamp_(0.0, 1.0)


def velocity_scores(
    transition: torch.Tensor, p: torch.Tensor, tau: float, max_steps: int, fractional: bool
) -> torch.Tensor:
    """(K, N) maximum-velocity scores: 1 / (step at which p T^s stops changing, per patch)."""
    if not 0.0 < tau < 1.0:
        raise ValueError(f"velocity_tau must be in (0, 1) (a relative change); got {tau}")
    tiny = torch.finfo(p.dtype).tiny
    steps = torch.full_like(p, float(max_steps + 1))
    done = torch.zeros_like(p, dtype=torch.bool)
    previous, previous_ratio = p, torch.ones_like(p)
    for step in range(1, max_steps + 1):
        current = previous @ transition
        ratio = (current - previous).abs() / torch.maximum(current, previous).clamp_min(tiny)
        newly = ~done & (ratio < tau)
        if fractional:  # previous_ratio >= tau > ratio on `newly`: the crossing lies in (step-1, step]
            crossing = (step - 1) + (previous_ratio - tau) / (previous_ratio - ratio).clamp_min(tiny)
        else:
            crossing = torch.full_like(p, float(step))
        steps = torch.where(newly, crossing, steps)
        done |= newly
        if bool(done.all()):
            break
        previous, previous_ratio = current, ratio
    return 1.0 / steps


def _prepare(G_clip, layers, cfg):
    attention, grid = layer_averaged_attention(layers)
    probs = scores_on_grid(G_clip.to(attention.device), grid)
    p, present = nms_normalise(probs, cfg.nms_threshold)
    return attention, grid, p, present


def refine_dslo_optimal_path(G_clip: torch.Tensor, layers, cfg) -> torch.Tensor:
    """DSLO optimal path: (K, h, w) scores in [0, 1] on the finest attention grid."""
    attention, grid, p, present = _prepare(G_clip, layers, cfg)
    scores = optimal_path_scores(attention, p, cfg.sinkhorn_epsilon, cfg.sinkhorn_iterations)
    scores[~present] = 0.0
    return scores.reshape(-1, *grid)


def refine_dslo_max_velocity(G_clip: torch.Tensor, layers, cfg) -> torch.Tensor:
    """DSLO maximum velocity: (K, h, w) velocities in [0, 1] on the finest attention grid."""
    attention, grid, p, present = _prepare(G_clip, layers, cfg)
    transition = ipf_doubly_stochastic(attention, cfg.ipf_iterations)
    del attention
    scores = velocity_scores(transition, p, cfg.velocity_tau, cfg.velocity_max_steps, cfg.velocity_fractional)
    scores[~present] = 0.0
    return scores.reshape(-1, *grid)
