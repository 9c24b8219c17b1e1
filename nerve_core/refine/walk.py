"""The engine's adapter for NERVE's random walk: CLIP probabilities + captured SD q/k -> class scores."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nerve_core.refine.random_walk import nerve_propagate


def refine_random_walk(G_clip: torch.Tensor, layers, cfg) -> torch.Tensor:
    """(K, h, w) refined scores on the SD node grid of one image, or (B, K, h, w) for a batch.

    G_clip (K, hc, wc) class probabilities on the CLIP patch grid; layers: objects with `q`, `k`
    ((heads, N, d) of this image) and `grid` (h, w), all on one grid, whose heads are stacked;
    cfg a RefineConfig. A batch of images with the same K gives G_clip (B, K, hc, wc) and q, k
    (B, heads, N, d), and is walked in one batched call (the same result per image). G is
    resampled bilinearly to the node grid (align_corners=False, the pixel-centre convention of
    the rest of the engine), clamped >= 0 and renormalised per node, since bilinear resampling
    only preserves row sums up to rounding.
    """
    if not layers:
        raise ValueError("refine_random_walk needs at least one attention layer")
    grids = sorted({tuple(int(v) for v in layer.grid) for layer in layers})
    if len(grids) != 1:
        raise ValueError(f"all attention layers must share one node grid, got grids {grids}")
    grid = grids[0]
    q = torch.cat([layer.q for layer in layers], -3)
    k = torch.cat([layer.k for layer in layers], -3)
    G = node_probabilities(G_clip, grid, q.device)
    P = nerve_propagate(
        G if G_clip.ndim == 4 else G[0], q, k, grid,
        alpha=cfg.alpha, beta=cfg.beta, c=cfg.c, eps_self=cfg.eps_self, steps=cfg.steps,
        affinity=cfg.global_affinity, temperature=cfg.temperature, power=cfg.power,
        features=cfg.features, block_size=cfg.block_size,
    )
    return P.transpose(-1, -2).reshape(*G_clip.shape[:-2], *grid)


def node_probabilities(G_clip: torch.Tensor, grid, device) -> torch.Tensor:
    """(B, N, K) float32 row-stochastic G on the node grid from (B, K, hc, wc) or (K, hc, wc)
    class probabilities (B = 1 then): bilinear, clamped >= 0, renormalised per node."""
    batch = G_clip[None] if G_clip.ndim == 3 else G_clip
    images, num_classes = batch.shape[:2]
    G = F.interpolate(batch.to(device, torch.float32), size=grid, mode="bilinear", align_corners=False)
    G = G.clamp_min(0).reshape(images, num_classes, -1).transpose(1, 2)
    sums = G.sum(-1, keepdim=True)
    return torch.where(sums > 0, G / sums.clamp_min(torch.finfo(G.dtype).tiny), 1.0 / num_classes)
