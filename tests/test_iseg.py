"""Dense attention from q, k, its resampling to a common grid, and the iSeg refiner."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nerve_core.config import RefineConfig
from nerve_core.refine.attention import (
    attention_from_qk,
    layer_averaged_attention,
    resample_attention,
    scores_on_grid,
)
from nerve_core.refine.iseg import entropy_reduced_attention, normalise_maps, refine_iseg
from refine_toys import accuracy, noisy_clip_probs, partition_labels, partition_layer, random_layers


def test_attention_from_qk_equals_hand_computation():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(3, 7, 4, generator=g), torch.randn(3, 7, 4, generator=g)
    qn, kn = q.double().numpy(), k.double().numpy()
    expected = np.zeros((7, 7))
    for h in range(3):
        for i in range(7):
            logits = [sum(qn[h, i, c] * kn[h, j, c] for c in range(4)) / math.sqrt(4) for j in range(7)]
            e = np.exp(np.array(logits) - max(logits))
            expected[i] += e / e.sum() / 3
    np.testing.assert_allclose(attention_from_qk(q, k).numpy(), expected, rtol=1e-5, atol=1e-7)


def _linear_weights(out_size: int, in_size: int) -> np.ndarray:
    """1-D linear interpolation at half-pixel centres, clamped at the borders (built by hand)."""
    m = np.zeros((out_size, in_size))
    for o in range(out_size):
        src = min(max((o + 0.5) * in_size / out_size - 0.5, 0.0), in_size - 1)
        lo = int(math.floor(src))
        hi = min(lo + 1, in_size - 1)
        m[o, lo] += 1 - (src - lo)
        m[o, hi] += src - lo
    return m


def test_resample_attention_is_bilinear_on_both_axes_with_rows_renormalised():
    g = torch.Generator().manual_seed(1)
    a = torch.softmax(torch.randn(6, 6, generator=g), dim=1)  # grid (2, 3)
    r = np.kron(_linear_weights(4, 2), _linear_weights(5, 3))  # (20, 6): grid (4, 5)
    expected = r @ a.double().numpy() @ r.T
    expected /= expected.sum(axis=1, keepdims=True)
    out = resample_attention(a, (2, 3), (4, 5))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-7)


def test_layer_average_uses_finest_grid_and_stays_row_stochastic():
    layers = random_layers(torch.Generator().manual_seed(2))
    a, grid = layer_averaged_attention(layers)
    assert grid == (6, 8) and a.shape == (48, 48)
    expected = (attention_from_qk(layers[0].q, layers[0].k)
                + resample_attention(attention_from_qk(layers[1].q, layers[1].k), (3, 4), (6, 8))) / 2
    torch.testing.assert_close(a, expected)
    torch.testing.assert_close(a.sum(dim=1), torch.ones(48))


def test_entropy_step_is_gradient_descent_on_attention_entropy():
    g = torch.Generator().manual_seed(3)
    a = torch.softmax(3 * torch.randn(9, 9, generator=g, dtype=torch.float64), dim=1)
    step = 0.05
    x = (a / a.amax(dim=1, keepdim=True)).requires_grad_(True)
    entropy = -(x * x.log()).sum()
    (grad,) = torch.autograd.grad(entropy, x)
    expected = (x.detach() - step * grad).clamp_min(0)
    expected /= expected.sum(dim=1, keepdim=True)
    out = entropy_reduced_attention(a, step)
    torch.testing.assert_close(out, expected)
    def row_entropy(m):
        return -(m * m.clamp_min(1e-300).log()).sum(dim=1)
    assert bool((row_entropy(out) <= row_entropy(a) + 1e-12).all())


def test_normalise_maps_shifts_to_zero_min_and_unit_sum():
    maps = torch.tensor([[2.0, 3.0, 5.0], [1.0, 1.0, 1.0]])
    out = normalise_maps(maps)
    torch.testing.assert_close(out[0], torch.tensor([0.0, 0.25, 0.75]))
    assert bool(torch.isfinite(out).all()) and float(out[1].abs().sum()) == 0.0  # constant map: no class evidence


def test_iseg_recovers_planted_partition_better_than_noisy_argmax():
    g = torch.Generator().manual_seed(0)
    layers = [partition_layer((16, 16), g), partition_layer((8, 8), g)]
    probs = noisy_clip_probs((16, 16), g, noise=2.0)
    truth = partition_labels((16, 16))
    baseline = accuracy(probs, truth)
    refined = refine_iseg(probs, layers, RefineConfig())
    assert baseline < 0.8
    assert accuracy(refined, truth) > baseline + 0.15


def test_iseg_returns_finite_unit_range_scores_on_finest_grid():
    g = torch.Generator().manual_seed(4)
    probs = torch.softmax(torch.randn(5, 4, 7, generator=g), dim=0)
    scores = refine_iseg(probs, random_layers(g), RefineConfig())
    assert scores.shape == (5, 6, 8)
    assert bool(torch.isfinite(scores).all())
    flat = scores.reshape(5, -1)
    torch.testing.assert_close(flat.amin(dim=1), torch.zeros(5))
    torch.testing.assert_close(flat.amax(dim=1), torch.ones(5))


def test_scores_on_grid_resamples_bilinearly():
    probs = torch.arange(6.0).reshape(1, 2, 3)
    out = scores_on_grid(probs, (4, 5))
    r = np.kron(_linear_weights(4, 2), _linear_weights(5, 3))
    np.testing.assert_allclose(out[0].numpy(), r @ np.arange(6.0), rtol=1e-6)


def test_refiner_needs_a_layer():
    with pytest.raises(ValueError):
        refine_iseg(torch.rand(2, 3, 3), [], RefineConfig())
