"""A planted-partition problem for the random walk: a known segmentation, a coarse noisy G and heads
that see it (or not), so that every affinity form and setting can be scored by mIoU.

The grid is split into Voronoi regions (one class each). G is what a coarse, noisy CLIP gives: the
one-hot truth averaged over `block`×`block` node blocks, blocky again, plus uniform noise. Partition
heads carry a per-region embedding plus a direction shared by all nodes (real attention features
have one; it makes most cosines positive and unrelated regions look alike to the flat forms) plus
Gaussian noise; noise heads are pure Gaussian noise (half their cosines negative).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class PlantedSpec:
    grid: tuple[int, int] = (32, 32)
    regions: int = 6  # K
    block: int = 4  # G's resolution: one value per block×block nodes
    partition_heads: int = 4
    noise_heads: int = 2
    dim: int = 16  # D per head
    shared: float = 1.5  # scale of the direction shared by a partition head's nodes
    g_noise: float = 0.6  # amplitude of the uniform noise added to G before renormalising
    feature_noise: float = 0.5  # std of the Gaussian noise on the partition heads' q, k


def planted_problem(spec: PlantedSpec, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(G (N, K), q (H, N, D), k (H, N, D), truth (N,)) for one seed; heads: partition first, then noise."""
    g = torch.Generator().manual_seed(seed)
    h, w = spec.grid
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    points = torch.stack([ys.reshape(-1), xs.reshape(-1)], 1).float()
    centres = torch.rand(spec.regions, 2, generator=g) * torch.tensor([h, w])
    truth = torch.cdist(points, centres).argmin(1)
    onehot = F.one_hot(truth, spec.regions).float().T.reshape(spec.regions, h, w)
    coarse = F.avg_pool2d(onehot[None], spec.block, ceil_mode=True)[0]
    blocky = coarse.repeat_interleave(spec.block, 1)[:, :h].repeat_interleave(spec.block, 2)[:, :, :w]
    G = blocky.reshape(spec.regions, -1).T + spec.g_noise * torch.rand(h * w, spec.regions, generator=g)
    G = G / G.sum(1, keepdim=True)
    embedding = torch.randn(spec.partition_heads, spec.regions, spec.dim, generator=g)
    shared = spec.shared * torch.randn(spec.partition_heads, 1, spec.dim, generator=g)

    def features():
        partition = embedding[:, truth] + shared + spec.feature_noise * torch.randn(
            spec.partition_heads, h * w, spec.dim, generator=g)
        return torch.cat([partition, torch.randn(spec.noise_heads, h * w, spec.dim, generator=g)])

    q = features()
    k = features()
    return G, q, k, truth


def miou(labels: torch.Tensor, truth: torch.Tensor, regions: int) -> float:
    """Mean IoU in percent over the classes present in labels or truth."""
    ious = []
    for c in range(regions):
        union = ((labels == c) | (truth == c)).sum()
        if union:
            ious.append(((labels == c) & (truth == c)).sum() / union)
    return 100 * torch.stack(ious).float().mean().item()
