"""Joint bilateral upsampling against a direct per-pixel evaluation of its definition."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nerve_core.config import UpsampleConfig
from nerve_core.upsample_jbu import joint_bilateral_upsample


def _centre_sample(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """Guide (H, W, 3) sampled bilinearly at the centres of an (h, w) grid, by hand."""
    big_h, big_w = image.shape[:2]
    out = np.zeros((h, w, 3))
    for qy in range(h):
        for qx in range(w):
            sy = min(max((qy + 0.5) * big_h / h - 0.5, 0.0), big_h - 1)
            sx = min(max((qx + 0.5) * big_w / w - 0.5, 0.0), big_w - 1)
            y0, x0 = int(math.floor(sy)), int(math.floor(sx))
            y1, x1 = min(y0 + 1, big_h - 1), min(x0 + 1, big_w - 1)
            fy, fx = sy - y0, sx - x0
            out[qy, qx] = ((1 - fy) * (1 - fx) * image[y0, x0] + (1 - fy) * fx * image[y0, x1]
                           + fy * (1 - fx) * image[y1, x0] + fy * fx * image[y1, x1])
    return out


def _reference(scores: np.ndarray, image: np.ndarray, cfg: UpsampleConfig) -> np.ndarray:
    """The JBU sum written out: every output pixel, every low-res pixel within the window."""
    k, h, w = scores.shape
    big_h, big_w = image.shape[:2]
    low = _centre_sample(image, h, w)
    out = np.zeros((k, big_h, big_w))
    for y in range(big_h):
        py = (y + 0.5) * h / big_h - 0.5
        for x in range(big_w):
            px = (x + 0.5) * w / big_w - 0.5
            num, den = np.zeros(k), 0.0
            for qy in range(h):
                for qx in range(w):
                    if abs(qy - py) > cfg.radius + 1e-6 or abs(qx - px) > cfg.radius + 1e-6:
                        continue
                    spatial = math.exp(-((qy - py) ** 2 + (qx - px) ** 2) / (2 * cfg.sigma_spatial**2))
                    colour = math.exp(-np.sum((image[y, x] - low[qy, qx]) ** 2) / (2 * cfg.sigma_range**2))
                    num += spatial * colour * scores[:, qy, qx]
                    den += spatial * colour
            out[:, y, x] = num / den
    return out


@pytest.mark.parametrize("size", [(12, 15), (9, 10)])  # factors 3 (window edges hit exactly) and 2.5
def test_flat_guide_gives_plain_gaussian_upsampling(size):
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(2, 4, 5, generator=g)
    guide = np.full((*size, 3), 117, dtype=np.uint8)
    cfg = UpsampleConfig(name="joint_bilateral", sigma_spatial=0.8, sigma_range=0.1, radius=1)
    expected = _reference(scores.double().numpy(), np.full((*size, 3), 117 / 255), cfg)
    out = joint_bilateral_upsample(scores, guide, cfg)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_textured_guide_matches_definition_and_row_chunks():
    g = torch.Generator().manual_seed(1)
    scores = torch.rand(3, 4, 4, generator=g)
    guide = torch.rand(10, 11, 3, generator=g)
    cfg = UpsampleConfig(name="joint_bilateral", sigma_spatial=1.0, sigma_range=0.2, radius=2)
    expected = _reference(scores.double().numpy(), guide.double().numpy(), cfg)
    whole = joint_bilateral_upsample(scores, guide, cfg)
    np.testing.assert_allclose(whole.numpy(), expected, rtol=1e-4, atol=1e-5)
    chunked = joint_bilateral_upsample(scores, guide, cfg, max_elements=1)  # one row at a time
    torch.testing.assert_close(chunked, whole)


def test_edges_follow_the_guide_and_tiny_range_sigma_stays_finite():
    """A step edge in the guide between low-res pixels: JBU keeps each side's value."""
    scores = torch.zeros(1, 1, 4)
    scores[0, 0, 2:] = 1.0
    guide = np.zeros((1, 16, 3), dtype=np.uint8)
    guide[:, 8:] = 255
    cfg = UpsampleConfig(name="joint_bilateral", sigma_spatial=1.0, sigma_range=1e-3, radius=2)
    out = joint_bilateral_upsample(scores, guide, cfg)
    assert bool(torch.isfinite(out).all())
    torch.testing.assert_close(out[0, 0], (torch.arange(16) >= 8).float())
