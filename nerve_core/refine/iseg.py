"""iSeg refinement (Sun et al., "iSeg: An Iterative Refinement-based Framework for Training-free
Segmentation", arXiv 2409.03209): entropy-reduced self-attention, iterated over the class maps.

iSeg refines a class map c (N,) by c <- Ã c repeatedly. Plain self-attention spreads a little mass
everywhere, and iterating it washes the maps out; iSeg first lowers the attention's entropy
H(A) = -Σ A log A with one gradient-descent step, A <- A - λ ∂H/∂A = A + λ (1 + ln A): weak
entries (A < e^-1 in row-max units) shrink, those that fall below zero are cut, strong ones grow.
As in iSeg's public code: A is divided by its row maximum first (so λ means the same at any N),
negatives are clamped to 0, rows renormalised; the class maps are shifted to a zero minimum and
normalised to unit sum over patches before and after every iteration; the result is min-max
normalised per class to [0, 1] (the scale iSeg's background threshold, e.g. 0.45 on COCO, uses).

Here the CLIP class probabilities stand in for iSeg's SD cross-attention maps (its category-
enhanced cross-attention is a text-prompt device of SD and has no counterpart on CLIP scores).
Output grid: the finest captured attention grid.
"""
from __future__ import annotations

import torch

from nerve_core.refine.attention import layer_averaged_attention, scores_on_grid


def entropy_reduced_attention(attention: torch.Tensor, step: float) -> torch.Tensor:
    """Row-stochastic (N, N) result of one entropy-descent step of size `step` on row-max-normalised A."""
    tiny = torch.finfo(attention.dtype).tiny
    a = attention / attention.amax(dim=1, keepdim=True).clamp_min(tiny)
    reduced = a.clamp_min(tiny).log_().add_(1.0).mul_(step).add_(a).clamp_min_(0.0)
    del a
    # The row maximum (a = 1) becomes 1 + step > 0, so no row is empty.
    return reduced.div_(reduced.sum(dim=1, keepdim=True))


def normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """(K, N) maps shifted to a zero minimum and scaled to unit sum per class (all-zero if constant)."""
    shifted = maps - maps.amin(dim=1, keepdim=True)
    return shifted / shifted.sum(dim=1, keepdim=True).clamp_min(torch.finfo(maps.dtype).tiny)


def refine_iseg(G_clip: torch.Tensor, layers, cfg) -> torch.Tensor:
    """(K, h, w) iSeg scores in [0, 1] on the finest attention grid."""
    attention, grid = layer_averaged_attention(layers)
    transition = entropy_reduced_attention(attention, cfg.iseg_entropy_step)
    del attention
    maps = normalise_maps(scores_on_grid(G_clip.to(transition.device), grid))
    for _ in range(cfg.iseg_iterations):
        maps = normalise_maps(maps @ transition.T)
    low, high = maps.amin(dim=1, keepdim=True), maps.amax(dim=1, keepdim=True)
    scores = (maps - low) / (high - low).clamp_min(torch.finfo(maps.dtype).tiny)
    return scores.reshape(-1, *grid)
