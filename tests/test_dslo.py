"""DSLO: Sinkhorn, IPF, NMS normalisation, the velocity rule, and both refiners end to end."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from nerve_core.config import RefineConfig
from nerve_core.refine.dslo import (
    nms_normalise,
    optimal_path_scores,
    refine_dslo_max_velocity,
    refine_dslo_optimal_path,
    velocity_scores,
)
from nerve_core.refine.ipf import ipf_doubly_stochastic
from nerve_core.refine.sinkhorn import sinkhorn_scalings
from refine_toys import accuracy, noisy_clip_probs, partition_labels, partition_layer, random_layers


def _kernel_and_marginals(n=12, batch=3, seed=0, eps=0.1):
    g = torch.Generator().manual_seed(seed)
    cost = torch.rand(n, n, generator=g, dtype=torch.float64)
    a = torch.rand(n, batch, generator=g, dtype=torch.float64)
    a[:3, 0] = 0.0  # suppressed patches carry no mass
    a /= a.sum(dim=0)
    return cost, torch.exp(-cost / eps), a


def test_sinkhorn_marginals_match_targets():
    _, kernel, a = _kernel_and_marginals()
    b = torch.full((12,), 1 / 12, dtype=torch.float64)
    u, v = sinkhorn_scalings(kernel, a, b, iterations=500)
    for col in range(3):
        plan = u[:, col, None] * kernel * v[None, :, col]
        torch.testing.assert_close(plan.sum(dim=1), a[:, col], atol=1e-10, rtol=0)
        torch.testing.assert_close(plan.sum(dim=0), b, atol=1e-12, rtol=0)


def test_sinkhorn_plan_solves_the_entropic_dual():
    """Independent solution: maximise the entropic OT dual with L-BFGS; its plan must match."""
    eps = 0.1
    cost, kernel, a = _kernel_and_marginals(n=6, batch=1, seed=1, eps=eps)
    a = (a[:, 0] + 0.05) / (a[:, 0] + 0.05).sum()  # strictly positive: a finite dual optimum
    b = np.full(6, 1 / 6)
    c, an = cost.numpy(), a.numpy()

    def negative_dual(fg):
        f, g = fg[:6], fg[6:]
        p = np.exp((f[:, None] + g[None, :] - c) / eps)
        value = f @ an + g @ b - eps * p.sum()
        return -value, -np.concatenate([an - p.sum(axis=1), b - p.sum(axis=0)])

    res = minimize(negative_dual, np.zeros(12), jac=True, method="L-BFGS-B", options={"gtol": 1e-13, "ftol": 1e-15, "maxiter": 10000})
    f, g = res.x[:6], res.x[6:]
    expected = np.exp((f[:, None] + g[None, :] - c) / eps)
    u, v = sinkhorn_scalings(kernel, a[:, None], torch.tensor(b), iterations=2000)
    plan = (u[:, 0, None] * kernel * v[None, :, 0]).numpy()
    np.testing.assert_allclose(plan, expected, atol=1e-7)


def test_ipf_rows_and_columns_sum_to_one():
    g = torch.Generator().manual_seed(2)
    a = torch.softmax(2 * torch.randn(30, 30, generator=g), dim=1)

    def error(t):
        return max((t.sum(dim=0) - 1).abs().max().item(), (t.sum(dim=1) - 1).abs().max().item())

    assert error(ipf_doubly_stochastic(a, 200)) < 1e-4
    assert error(ipf_doubly_stochastic(a, 15)) < error(ipf_doubly_stochastic(a, 1))
    # IPF only rescales rows and columns: T = diag(r) A diag(c), so log(T / A) is additive.
    log_ratio = (ipf_doubly_stochastic(a.double(), 15) / a.double()).log()
    additive = log_ratio - log_ratio[:, :1] - log_ratio[:1, :] + log_ratio[0, 0]
    assert additive.abs().max().item() < 1e-9


def test_nms_normalise_is_softmax_over_patches_with_minus_infinity_below_threshold():
    g = torch.Generator().manual_seed(3)
    probs = torch.softmax(2 * torch.randn(4, 20, generator=g), dim=0)
    probs[3] = 0.01  # a class nowhere confident
    logits = probs.log().masked_fill(probs < 0.5, -torch.inf)
    p, present = nms_normalise(probs, 0.5)
    assert present.tolist() == [bool((probs[c] >= 0.5).any()) for c in range(4)]
    torch.testing.assert_close(p[present], torch.softmax(logits[present], dim=1))
    assert float(p[~present].abs().sum()) == 0.0


def test_velocity_rule_on_a_two_state_chain():
    """f0 = (1, 0), T = all 1/2: f1 = f2 = (1/2, 1/2). Relative changes: step 1 (0.5, 1), step 2 (0, 0)."""
    t = torch.full((2, 2), 0.5)
    p = torch.tensor([[1.0, 0.0]])
    integer = velocity_scores(t, p, tau=0.3, max_steps=5, fractional=False)
    torch.testing.assert_close(integer, torch.tensor([[1 / 2, 1 / 2]]))
    # Linear crossing of 0.3 between steps 1 and 2: 1 + (0.5-0.3)/0.5 and 1 + (1-0.3)/1.
    fractional = velocity_scores(t, p, tau=0.3, max_steps=5, fractional=True)
    torch.testing.assert_close(fractional, torch.tensor([[1 / 1.4, 1 / 1.7]]))
    never = velocity_scores(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), p, tau=0.3, max_steps=4, fractional=False)
    torch.testing.assert_close(never, torch.tensor([[1 / 5, 1 / 5]]))  # a periodic chain never settles


def test_optimal_path_score_is_mean_affinity_of_suppliers():
    g = torch.Generator().manual_seed(5)
    attention = torch.softmax(torch.randn(8, 8, generator=g, dtype=torch.float64), dim=1)
    p = torch.softmax(torch.randn(2, 8, generator=g, dtype=torch.float64), dim=1)
    scores = optimal_path_scores(attention, p, epsilon=0.1, iterations=3000)
    affinity = attention / attention.amax(dim=1, keepdim=True)
    kernel = torch.exp(-(1 - affinity) / 0.1)
    for c in range(2):
        u, v = sinkhorn_scalings(kernel, p[c, :, None], torch.full((8,), 1 / 8, dtype=torch.float64), 3000)
        plan = u * kernel * v.T
        supplier = plan / plan.sum(dim=0, keepdim=True)  # column j: where j's mass comes from
        torch.testing.assert_close(scores[c], (supplier * affinity).sum(dim=0))


@pytest.mark.parametrize("refiner", [refine_dslo_optimal_path, refine_dslo_max_velocity])
def test_dslo_recovers_planted_partition_better_than_noisy_argmax(refiner):
    g = torch.Generator().manual_seed(0)
    layers = [partition_layer((16, 16), g), partition_layer((8, 8), g)]
    probs = noisy_clip_probs((16, 16), g, noise=2.0)
    truth = partition_labels((16, 16))
    baseline = accuracy(probs, truth)
    assert baseline < 0.8
    assert accuracy(refiner(probs, layers, RefineConfig()), truth) > baseline + 0.1


@pytest.mark.parametrize("refiner", [refine_dslo_optimal_path, refine_dslo_max_velocity])
def test_dslo_returns_finite_scores_on_finest_grid_and_zero_for_absent_classes(refiner):
    g = torch.Generator().manual_seed(6)
    probs = torch.softmax(2 * torch.randn(5, 4, 7, generator=g), dim=0)
    probs[4] = 0.0  # never above the NMS threshold
    scores = refiner(probs, random_layers(g), RefineConfig())
    assert scores.shape == (5, 6, 8)
    assert bool(torch.isfinite(scores).all())
    assert bool((scores >= 0).all()) and bool((scores <= 1).all())
    assert float(scores[4].abs().sum()) == 0.0
