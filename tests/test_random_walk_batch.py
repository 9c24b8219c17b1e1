"""NERVE's random walk as the engine calls it: the adapter over captured layers (grids, the remainder
column, diagnostics), batches walked as each image alone, and several settings sharing transitions."""
from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from nerve_core.config import RefineConfig
from nerve_core.refine.random_walk import (
    head_weights,
    nerve_closed_form,
    nerve_propagate,
    nerve_propagate_settings,
)
from nerve_core.refine.walk import refine_random_walk, refine_random_walk_diagnosed
from tests.walk_support import FORM_IDS, FORMS, WALK, random_inputs


def test_adapter_stacks_layers_and_equals_propagate_on_the_same_grid():
    grid = (6, 5)
    G, q, k = random_inputs(grid, heads=4, seed=13)
    layers = [SimpleNamespace(q=q[:2], k=k[:2], grid=grid), SimpleNamespace(q=q[2:], k=k[2:], grid=list(grid))]
    cfg = RefineConfig(global_affinity="exp_cosine", steps=12, block_size=7)
    scores = refine_random_walk(G.T.reshape(-1, *grid), layers, cfg)
    expected = nerve_propagate(G, q, k, grid, alpha=cfg.alpha, beta=cfg.beta, c=cfg.c, eps_self=cfg.eps_self,
                               steps=cfg.steps, affinity="exp_cosine", temperature=cfg.temperature)
    assert scores.shape == (G.shape[1], *grid)
    torch.testing.assert_close(scores, expected.T.reshape(-1, *grid))


def test_adapter_resamples_G_to_the_node_grid():
    clip_grid, grid = (3, 4), (6, 8)
    g = torch.Generator().manual_seed(0)
    G_clip = torch.softmax(torch.randn(3, *clip_grid, generator=g), 0)
    _, q, k = random_inputs(grid, seed=1)
    cfg = RefineConfig(global_affinity="relu_cosine", steps=0)
    scores = refine_random_walk(G_clip, [SimpleNamespace(q=q, k=k, grid=grid)], cfg)
    # align_corners=False, exact factor 2: output pixel y reads input (y + 0.5)/2 - 0.5.
    ys = ((torch.arange(6) + 0.5) / 2 - 0.5).clamp(0, 2)
    xs = ((torch.arange(8) + 0.5) / 2 - 0.5).clamp(0, 3)
    y0, x0 = ys.floor().long(), xs.floor().long()
    y1, x1 = (y0 + 1).clamp(max=2), (x0 + 1).clamp(max=3)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None]
    expected = ((1 - fy) * (1 - fx) * G_clip[:, y0][:, :, x0] + (1 - fy) * fx * G_clip[:, y0][:, :, x1]
                + fy * (1 - fx) * G_clip[:, y1][:, :, x0] + fy * fx * G_clip[:, y1][:, :, x1])
    torch.testing.assert_close(scores, expected / expected.sum(0), atol=1e-6, rtol=1e-5)


def test_adapter_walks_the_remainder_as_one_more_column():
    """CLIP's class probabilities (max over synonyms) sum to less than 1: the walk carries the rest
    as a column, so scores keep CLIP's scale; remainder=renormalise divides rows instead."""
    grid = (5, 6)
    G, q, k = random_inputs(grid, seed=5)
    mass = torch.linspace(0.3, 0.9, G.shape[0])[:, None]
    G_clip = (G * mass).T.reshape(-1, *grid)
    layers = [SimpleNamespace(q=q, k=k, grid=grid)]
    cfg = RefineConfig(steps=0)
    torch.testing.assert_close(refine_random_walk(G_clip, layers, cfg), G_clip)  # zero steps: P = G, unscaled
    cfg = RefineConfig(steps=9, global_affinity="cosine", sign_handling="row_sum")
    with_rest = torch.cat([G * mass, 1 - mass], 1)
    expected = nerve_propagate(with_rest, q, k, grid, alpha=cfg.alpha, beta=cfg.beta, c=cfg.c, eps_self=cfg.eps_self,
                               steps=9, sign_handling="row_sum", row_floor=cfg.row_floor)[:, :-1]
    torch.testing.assert_close(refine_random_walk(G_clip, layers, cfg), expected.T.reshape(-1, *grid))
    renormalised = replace(cfg, remainder="renormalise")
    expected = nerve_propagate(G, q, k, grid, alpha=cfg.alpha, beta=cfg.beta, c=cfg.c, eps_self=cfg.eps_self,
                               steps=9, sign_handling="row_sum", row_floor=cfg.row_floor)
    torch.testing.assert_close(refine_random_walk(G_clip, layers, renormalised), expected.T.reshape(-1, *grid))
    with pytest.raises(ValueError, match="remainder"):
        refine_random_walk(G_clip, layers, replace(cfg, remainder="drop"))


def test_adapter_returns_the_walk_diagnostics_per_image():
    grid = (5, 6)
    images = [random_inputs(grid, seed=30 + b) for b in range(2)]
    G, q, k = (torch.stack(parts) for parts in zip(*images))
    layers = [SimpleNamespace(q=q, k=k, grid=grid)]
    scores, found = refine_random_walk_diagnosed(G.transpose(1, 2).reshape(2, -1, *grid), layers, RefineConfig(steps=5))
    assert scores.shape == (2, G.shape[-1], *grid) and len(found) == 2
    assert set(found[0]) == {"head_weights", "negative_fraction", "global_rows_kept", "local_rows_kept", "mass_moved"}
    one, alone = refine_random_walk_diagnosed(G[1].T.reshape(-1, *grid), [SimpleNamespace(q=q[1], k=k[1], grid=grid)],
                                              RefineConfig(steps=5))
    assert alone["negative_fraction"] == pytest.approx(found[1]["negative_fraction"])


def test_adapter_refuses_layers_on_different_grids():
    _, q, k = random_inputs((4, 4))
    _, q2, k2 = random_inputs((8, 8))
    layers = [SimpleNamespace(q=q, k=k, grid=(4, 4)), SimpleNamespace(q=q2, k=k2, grid=(8, 8))]
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(8, 8\)"):
        refine_random_walk(torch.full((2, 4, 4), 0.5), layers, RefineConfig())


@pytest.mark.parametrize("form,opts", FORMS, ids=FORM_IDS)
def test_a_batch_walks_each_image_as_alone(form, opts):
    grid = (5, 7)
    images = [random_inputs(grid, seed=20 + b) for b in range(3)]
    G, q, k = (torch.stack(parts) for parts in zip(*images))
    P = nerve_propagate(G, q, k, grid, steps=15, affinity=form, **opts, **WALK)
    alone = torch.stack([nerve_propagate(*image, grid, steps=15, affinity=form, **opts, **WALK) for image in images])
    assert P.shape == (3, grid[0] * grid[1], G.shape[-1])
    torch.testing.assert_close(P, alone, atol=1e-6, rtol=1e-5)
    weights = head_weights(G, q, k, grid, beta=WALK["beta"], c=WALK["c"], eps_self=WALK["eps_self"], affinity=form, **opts)
    alone = torch.stack([head_weights(*image, grid, beta=WALK["beta"], c=WALK["c"], eps_self=WALK["eps_self"],
                                      affinity=form, **opts) for image in images])
    torch.testing.assert_close(weights, alone)


def test_batch_shapes_must_agree():
    grid = (5, 7)
    G, q, k = random_inputs(grid)
    with pytest.raises(ValueError, match=r"\(B, H, N=35, D\)"):
        nerve_propagate(torch.stack([G, G]), torch.stack([q, q, q]), torch.stack([k, k, k]), grid, steps=2, **WALK)
    with pytest.raises(ValueError, match=r"G must be \(N, K\) with"):
        nerve_closed_form(torch.stack([G, G]), torch.stack([q, q]), torch.stack([k, k]), grid, **WALK)


def test_adapter_walks_a_batch_as_one_image_at_a_time():
    grid = (6, 5)
    images = [random_inputs(grid, heads=4, seed=30 + b) for b in range(2)]
    cfg = RefineConfig(steps=12)
    G_clip = torch.stack([G.T.reshape(-1, *grid) for G, _, _ in images])
    q, k = torch.stack([q for _, q, _ in images]), torch.stack([k for _, _, k in images])
    layers = [SimpleNamespace(q=q[:, :3], k=k[:, :3], grid=grid), SimpleNamespace(q=q[:, 3:], k=k[:, 3:], grid=grid)]
    scores = refine_random_walk(G_clip, layers, cfg)
    alone = [refine_random_walk(G_clip[b], [SimpleNamespace(q=l.q[b], k=l.k[b], grid=grid) for l in layers], cfg)
             for b in range(2)]
    assert scores.shape == (2, 4, *grid)
    torch.testing.assert_close(scores, torch.stack(alone), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("form,opts", [FORMS[1], FORMS[4]], ids=["cosine_signed", "exp"])
def test_settings_share_transitions_and_equal_separate_walks(form, opts):
    grid = (5, 7)
    G, q, k = random_inputs(grid, seed=41)
    settings = [(0.8, 0.3, 3.0), (0.95, 0.7, 30.0)]
    walks = nerve_propagate_settings(G, q, k, grid, settings=settings, eps_self=0.1, steps=12, affinity=form, **opts)
    for (alpha, beta, c), P in zip(settings, walks):
        alone = nerve_propagate(G, q, k, grid, alpha=alpha, beta=beta, c=c, eps_self=0.1, steps=12, affinity=form, **opts)
        torch.testing.assert_close(P, alone)
