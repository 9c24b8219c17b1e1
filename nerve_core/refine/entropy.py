"""Entropy weights of the attention heads (NERVE eq. 13-14)."""
from __future__ import annotations

import torch


def entropy_weights(one_step: torch.Tensor, c: float) -> torch.Tensor:
    """(..., H) w = softmax(−c·H) over the heads, H_h = −(1/N) Σ_i Σ_k P1 log P1, from
    one_step = (..., H, N, K) S^(h) G.

    p is clamped to the smallest positive normal number inside the log only, so p = 0 adds 0
    (the limit of p log p) instead of NaN.
    """
    tiny = torch.finfo(one_step.dtype).tiny
    entropy = -(one_step * torch.log(one_step.clamp_min(tiny))).sum(-1).mean(-1)
    return torch.softmax(-c * entropy, -1)
