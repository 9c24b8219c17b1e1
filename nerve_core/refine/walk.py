"""The engine's adapter for NERVE's random walk: CLIP probabilities + captured SD q/k -> class scores."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nerve_core.refine.random_walk import nerve_propagate

REMAINDERS = ("column", "renormalise")  # engine.refine.remainder


def refine_random_walk(G_clip: torch.Tensor, layers, cfg) -> torch.Tensor:
    """(K, h, w) refined scores on the SD node grid of one image, or (B, K, h, w) for a batch."""
    return refine_random_walk_diagnosed(G_clip, layers, cfg, diagnostics=False)[0]


def refine_random_walk_diagnosed(G_clip: torch.Tensor, layers, cfg, diagnostics: bool = True):
    """(scores, walk diagnostics) of the walk: a dict (one image) or a list of dicts (a batch), or
    None with diagnostics=False.

    G_clip (K, hc, wc) class probabilities on the CLIP patch grid (each class: the max over its
    synonyms of a softmax over prompts, so a node's K values sum to at most 1); layers: objects with
    `q`, `k` ((heads, N, d) of this image) and `grid` (h, w), all on one grid, whose heads are
    stacked; cfg a RefineConfig. A batch of images with the same K gives G_clip (B, K, hc, wc) and
    q, k (B, heads, N, d), walked in one batched call (the same result per image). G is resampled
    bilinearly to the node grid (align_corners=False, the engine's pixel-centre convention) and
    clamped >= 0. cfg.remainder says how its rows become stochastic (docs/method.md, "G"):
    column = the mass the K classes do not hold (other prompts, other synonyms) is walked as one
    more column and dropped afterwards, so the scores stay on CLIP's probability scale (what the
    open-vocabulary threshold and the WSSS min-max rules read); renormalise = rows divided by their sum.
    """
    if not layers:
        raise ValueError("refine_random_walk needs at least one attention layer")
    if cfg.remainder not in REMAINDERS:
        raise ValueError(f"unknown engine.refine.remainder {cfg.remainder!r}; expected one of {REMAINDERS}")
    grids = sorted({tuple(int(v) for v in layer.grid) for layer in layers})
    if len(grids) != 1:
        raise ValueError(f"all attention layers must share one node grid, got grids {grids}")
    grid = grids[0]
    q = torch.cat([layer.q for layer in layers], -3)
    k = torch.cat([layer.k for layer in layers], -3)
    num_classes = G_clip.shape[-3]
    G = node_probabilities(G_clip, grid, q.device, cfg.remainder)
    walked = nerve_propagate(
        G if G_clip.ndim == 4 else G[0], q, k, grid,
        alpha=cfg.alpha, beta=cfg.beta, c=cfg.c, eps_self=cfg.eps_self, steps=cfg.steps,
        affinity=cfg.global_affinity, temperature=cfg.temperature, power=cfg.power,
        features=cfg.features, block_size=cfg.block_size, sign_handling=cfg.sign_handling,
        row_floor=cfg.row_floor, diagnostics=diagnostics,
    )
    P, found = walked if diagnostics else (walked, None)
    P = P[..., :num_classes]
    return P.transpose(-1, -2).reshape(*G_clip.shape[:-2], *grid), found


def node_probabilities(G_clip: torch.Tensor, grid, device, remainder: str = "renormalise") -> torch.Tensor:
    """(B, N, K) float32 row-stochastic G on the node grid from (B, K, hc, wc) or (K, hc, wc) class
    probabilities (B = 1 then): bilinear, clamped >= 0; remainder="column" appends the mass the K
    classes do not hold as one more column (K + 1 columns), then every row is normalised."""
    batch = G_clip[None] if G_clip.ndim == 3 else G_clip
    images, num_classes = batch.shape[:2]
    G = F.interpolate(batch.to(device, torch.float32), size=grid, mode="bilinear", align_corners=False)
    G = G.clamp_min(0).reshape(images, num_classes, -1).transpose(1, 2)
    sums = G.sum(-1, keepdim=True)
    if remainder == "column":
        G = torch.cat([G, (1 - sums).clamp_min(0)], -1)
        sums = G.sum(-1, keepdim=True)  # 1, or more where rounding let the K classes exceed 1
    return torch.where(sums > 0, G / sums.clamp_min(torch.finfo(G.dtype).tiny), 1.0 / G.shape[-1])
