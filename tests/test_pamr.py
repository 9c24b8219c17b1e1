"""PAMR against a per-pixel evaluation of its definition, and its invariants."""
from __future__ import annotations

import numpy as np
import torch

from nerve_core.pamr import pamr

OUTER = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def _reference(mask: np.ndarray, image: np.ndarray, iterations: int, dilations) -> np.ndarray:
    """Loops over pixels; borders replicated by clamping coordinates."""
    k, h, w = mask.shape
    def at(y, x):
        return (min(max(y, 0), h - 1), min(max(x, 0), w - 1))
    weights = np.zeros((h, w, 8 * len(dilations)))
    for y in range(h):
        for x in range(w):
            window = np.array([image[at(y + dy * d, x + dx * d)] for d in dilations for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
            sigma = window.std(axis=0, ddof=1)
            logits = [-np.mean(np.abs(image[at(y + dy * d, x + dx * d)] - image[y, x]) / (1e-8 + 0.1 * sigma))
                      for d in dilations for dy, dx in OUTER]
            e = np.exp(np.array(logits) - max(logits))
            weights[y, x] = e / e.sum()
    for _ in range(iterations):
        new = np.zeros_like(mask)
        for y in range(h):
            for x in range(w):
                neighbours = [mask[(slice(None), *at(y + dy * d, x + dx * d))] for d in dilations for dy, dx in OUTER]
                new[:, y, x] = sum(wt * m for wt, m in zip(weights[y, x], neighbours))
        mask = new
    return mask


def test_pamr_matches_definition():
    g = torch.Generator().manual_seed(0)
    image = (torch.rand(9, 11, 3, generator=g) * 255).to(torch.uint8)
    logits = torch.randn(2, 9, 11, generator=g)
    expected = _reference(logits.double().numpy(), image.double().numpy(), iterations=3, dilations=(1, 2))
    out = pamr(logits, image, iterations=3, dilations=(1, 2))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_constant_mask_is_unchanged():
    g = torch.Generator().manual_seed(1)
    image = (torch.rand(20, 24, 3, generator=g) * 255).to(torch.uint8)
    mask = torch.full((3, 20, 24), 0.25)
    mask[1] = -2.0
    torch.testing.assert_close(pamr(mask, image), mask)  # default: 10 iterations, dilations (8, 16)


def test_batch_equals_per_image_and_output_is_a_convex_combination():
    g = torch.Generator().manual_seed(2)
    images = (torch.rand(2, 12, 10, 3, generator=g) * 255).to(torch.uint8)
    logits = torch.randn(2, 4, 12, 10, generator=g)
    batch = pamr(logits, images, iterations=4, dilations=(1, 3))
    assert batch.shape == logits.shape
    for b in range(2):
        torch.testing.assert_close(batch[b], pamr(logits[b], images[b], iterations=4, dilations=(1, 3)))
    low, high = logits.amin(dim=(2, 3), keepdim=True), logits.amax(dim=(2, 3), keepdim=True)
    assert bool((batch >= low - 1e-5).all()) and bool((batch <= high + 1e-5).all())


def test_affinity_ignores_image_scale_and_offset():
    """Differences are divided by the local spread: CLIP-normalised or raw pixels give the same result."""
    g = torch.Generator().manual_seed(3)
    raw = torch.rand(10, 10, 3, generator=g)
    logits = torch.randn(2, 10, 10, generator=g)
    mean, std = torch.tensor([0.48, 0.46, 0.41]), torch.tensor([0.27, 0.26, 0.28])
    torch.testing.assert_close(pamr(logits, (raw - mean) / std, 5, (1, 2)), pamr(logits, raw, 5, (1, 2)), rtol=1e-4, atol=1e-5)
