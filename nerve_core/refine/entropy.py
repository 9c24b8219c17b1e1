"""Entropy weights of the attention heads (NERVE eq. 13-14; docs/method.md, "Entropy weights")."""
from __future__ import annotations

import torch


def entropy_weights(one_step: torch.Tensor, c: float) -> torch.Tensor:
    """(..., H) w = softmax(−c·H) over the heads, H_h = −(1/N) Σ_i Σ_k p log p, from
    one_step = (..., H, N, K) S^(h) G.

    Eq. 13 needs probabilities; under the signed row normalisation (sign_handling=row_sum) a
    one-step row may have negative entries. Each row is therefore taken as its positive part,
    renormalised: p = max(P1, 0) / Σ_k max(P1, 0), and a row with no positive mass counts as
    uniform (entropy log K, the least informative). On probability rows this changes nothing.
    p is clamped to the smallest positive normal number inside the log only, so p = 0 adds 0
    (the limit of p log p) instead of NaN.
    """
    positive = one_step.clamp_min(0)
    mass = positive.sum(-1, keepdim=True)
    p = torch.where(mass > 0, positive / torch.where(mass > 0, mass, 1), 1.0 / one_step.shape[-1])
    tiny = torch.finfo(p.dtype).tiny
    entropy = -(p * torch.log(p.clamp_min(tiny))).sum(-1).mean(-1)
    return torch.softmax(-c * entropy, -1)
