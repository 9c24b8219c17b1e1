"""Shared inputs for the refiner tests: SD-like layers whose attention encodes a known partition."""
from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F


def partition_labels(grid: tuple[int, int]) -> torch.Tensor:
    """(h·w,) labels of a planted 3-region partition (left, right, a disc), at any resolution."""
    h, w = grid
    y, x = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
    labels = (x > 0.5).long()
    labels[(y - 0.5) ** 2 + (x - 0.3) ** 2 < 0.05] = 2
    return labels.flatten()


def partition_layer(grid, generator, heads=2, dim=8, strength=3.0, noise=0.3):
    """A layer whose q, k are a scaled one-hot of the node's region plus noise: attention stays
    mostly inside a region, so the attention "knows" the partition."""
    labels = partition_labels(grid)
    base = strength * F.one_hot(labels, dim).float()
    q = base + noise * torch.randn(heads, len(labels), dim, generator=generator)
    k = base + noise * torch.randn(heads, len(labels), dim, generator=generator)
    return SimpleNamespace(q=q, k=k, grid=grid)


def noisy_clip_probs(grid, generator, noise=2.0, classes=3):
    """(K, h, w) class probabilities: softmax of 3·one-hot(truth) + Gaussian noise."""
    truth = partition_labels(grid)
    logits = 3.0 * F.one_hot(truth, classes).float() + noise * torch.randn(len(truth), classes, generator=generator)
    return torch.softmax(logits, dim=1).T.reshape(classes, *grid)


def random_layers(generator, grids=((6, 8), (3, 4)), heads=3, dim=5):
    """Random q, k for layers at different grids (the refiners must resample them)."""
    return [
        SimpleNamespace(
            q=torch.randn(heads, h * w, dim, generator=generator),
            k=torch.randn(heads, h * w, dim, generator=generator),
            grid=(h, w),
        )
        for h, w in grids
    ]


def accuracy(scores: torch.Tensor, truth: torch.Tensor) -> float:
    return (scores.reshape(scores.shape[0], -1).argmax(dim=0) == truth).float().mean().item()
