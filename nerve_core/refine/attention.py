"""Dense SD self-attention on one common grid, for the refiners that need the full N x N matrix.

iSeg and DSLO work on the softmax attention itself (not on a low-rank affinity like NERVE's walk),
so it is built densely: A_l = mean over heads of softmax(q kᵀ / √d), one head at a time so that
peak memory stays at a few N x N float32 matrices (64 MiB each at N = 4096).

Layers captured at different resolutions (DSLO: 16x16 and 32x32 up blocks) are brought to the
finest grid before averaging: bilinear interpolation (half-pixel centres, torch's
align_corners=False) along the key axis and then along the query axis, followed by a row
renormalisation so that every row is again a probability distribution over the new key grid.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def attention_from_qk(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """(N, N) float32 head-averaged softmax attention from q, k of shape (heads, N, d); rows sum to 1."""
    if q.shape != k.shape or q.dim() != 3:
        raise ValueError(f"q and k must both be (heads, N, d); got {tuple(q.shape)} and {tuple(k.shape)}")
    heads, n, d = q.shape
    scale = 1.0 / math.sqrt(d)
    total = torch.zeros(n, n, dtype=torch.float32, device=q.device)
    for h in range(heads):
        logits = (q[h].float() @ k[h].float().T).mul_(scale)
        total += torch.softmax(logits, dim=-1)
        del logits
    return total.div_(heads)


def _resample_last_axis(a: torch.Tensor, grid: tuple[int, int], target: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resample the last axis of `a` (M, h·w) from `grid` to `target`: (M, H·W)."""
    rows = a.shape[0]
    image = a.reshape(rows, 1, *grid)
    return F.interpolate(image, size=target, mode="bilinear", align_corners=False).reshape(rows, -1)


def resample_attention(a: torch.Tensor, grid: tuple[int, int], target: tuple[int, int]) -> torch.Tensor:
    """Attention (n, n) on `grid` -> (N, N) on `target`: bilinear on key and query axes, rows renormalised."""
    grid, target = tuple(grid), tuple(target)
    if grid == target:
        return a
    keys = _resample_last_axis(a, grid, target)  # (n, N)
    both = _resample_last_axis(keys.T.contiguous(), grid, target).T.contiguous()  # (N, N)
    del keys
    return both.div_(both.sum(dim=1, keepdim=True).clamp_min(torch.finfo(both.dtype).tiny))


def common_grid(layers) -> tuple[int, int]:
    """The finest grid among the layers (most nodes): the refiners' output grid."""
    return max((tuple(layer.grid) for layer in layers), key=lambda g: g[0] * g[1])


def layer_averaged_attention(layers, grid: tuple[int, int] | None = None) -> tuple[torch.Tensor, tuple[int, int]]:
    """(N, N) mean over layers of the head-averaged attention, on `grid` (default: the finest)."""
    if not layers:
        raise ValueError("this refiner needs at least one captured SD self-attention layer")
    grid = common_grid(layers) if grid is None else tuple(grid)
    total = None
    for layer in layers:
        a = resample_attention(attention_from_qk(layer.q, layer.k), layer.grid, grid)
        total = a if total is None else total.add_(a)
        del a
    return total.div_(len(layers)), grid


def scores_on_grid(scores: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Class maps (K, hc, wc) -> (K, N) on `grid` (bilinear, half-pixel centres), float32."""
    scores = scores.float()
    if tuple(scores.shape[-2:]) != tuple(grid):
        scores = F.interpolate(scores[None], size=tuple(grid), mode="bilinear", align_corners=False)[0]
    return scores.reshape(scores.shape[0], -1)
