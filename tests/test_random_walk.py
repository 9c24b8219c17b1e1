"""NERVE's random walk against independent dense formulations (docs/method.md, sections 4-7)."""
from __future__ import annotations

import math

import pytest
import torch

from nerve_core.refine.affinity import AffinitySpec, random_feature_maps
from nerve_core.refine.random_walk import (
    entropy_weights,
    head_weights,
    nerve_closed_form,
    nerve_propagate,
    walk_diagnostics,
)
from tests.walk_support import FORM_IDS, FORMS, GRIDS, WALK, random_inputs


def dense_transition(G, q, k, grid, *, beta, c, eps_self, form, **opts):
    """S = Σ_h w_h S^(h) in float64, written from the equations with loops over grid offsets."""
    h, w = grid
    n = h * w
    qn = q.double() / q.double().norm(dim=-1, keepdim=True)
    kn = k.double() / k.double().norm(dim=-1, keepdim=True)
    cos = torch.einsum("hid,hjd->hij", qn, kn)
    tau, power = opts.get("temperature", 0.1), opts.get("power", 1.0)
    affinity = {
        "cosine": lambda x: x,
        "shifted_cosine": lambda x: 0.5 * (1 + x),
        "relu_cosine": lambda x: torch.relu(x) ** power,
        "exp_cosine": lambda x: torch.exp(x / tau),
    }[form]
    signed, floor = opts.get("sign_handling") == "row_sum", opts.get("row_floor", 0.1)

    def usable(row):
        if signed:
            return row.sum() > 0 and row.sum() >= floor * row.abs().sum()
        return (row >= 0).all() and row.sum() > 0

    if opts.get("features"):
        phi, psi = random_feature_maps(qn, kn, AffinitySpec(form, **opts))
        A_global = torch.einsum("hir,hjr->hij", phi, psi)
    else:
        A_global = affinity(cos)
    A_local = torch.zeros_like(cos)
    for i in range(n):
        y, x = divmod(i, w)
        A_local[:, i, i] = eps_self
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if (dy or dx) and 0 <= y + dy < h and 0 <= x + dx < w:
                    j = (y + dy) * w + x + dx
                    A_local[:, i, j] = affinity(cos[:, i, j])
    eye = torch.eye(n, dtype=torch.float64)
    heads = []
    for hd in range(q.shape[0]):
        S_local = torch.zeros(n, n, dtype=torch.float64)
        S_head = torch.zeros(n, n, dtype=torch.float64)
        for i in range(n):
            row = A_local[hd, i]
            S_local[i] = row / row.sum() if usable(row) else eye[i]
        for i in range(n):
            row = A_global[hd, i]
            S_head[i] = beta * row / row.sum() + (1 - beta) * S_local[i] if usable(row) else S_local[i]
        heads.append(S_head)
    one_step = torch.stack([S @ G.double() for S in heads])
    # Eq. 13 on each row's positive part, renormalised (signed rows may have negative entries).
    positive = one_step.clamp_min(0)
    p_rows = positive / positive.sum(-1, keepdim=True)
    entropy = torch.stack([-(p * torch.log(p.clamp_min(1e-300))).sum() / n for p in p_rows])
    weights = torch.exp(-c * entropy) / torch.exp(-c * entropy).sum()
    return sum(wh * S for wh, S in zip(weights, heads))


def dense_truncated_walk(S, G, alpha, steps):
    """(1 − α)/(1 − α^{L+1}) Σ_{t<=L} α^t S^t G, term by term."""
    term, total = G.double(), G.double().clone()
    for _ in range(steps):
        term = alpha * (S @ term)
        total = total + term
    return (1 - alpha) / (1 - alpha ** (steps + 1)) * total


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("form,opts", FORMS, ids=FORM_IDS)
def test_short_walks_equal_dense_truncated_sum(grid, form, opts):
    G, q, k = random_inputs(grid, seed=grid[0] * 31 + grid[1])
    S = dense_transition(G, q, k, grid, beta=WALK["beta"], c=WALK["c"], eps_self=WALK["eps_self"], form=form, **opts)
    for steps in (3, 10):
        P = nerve_propagate(G, q, k, grid, steps=steps, affinity=form, **WALK, **opts)
        expected = dense_truncated_walk(S, G, WALK["alpha"], steps)
        assert P.dtype == torch.float32 and P.shape == G.shape
        torch.testing.assert_close(P.double(), expected, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("form,opts", FORMS, ids=FORM_IDS)
def test_long_walk_reaches_closed_form_within_theorem_bound(grid, form, opts):
    G, q, k = random_inputs(grid, seed=grid[0] * 17 + grid[1])
    n, alpha = G.shape[0], WALK["alpha"]
    closed = nerve_closed_form(G, q, k, grid, affinity=form, **WALK, **opts)
    assert closed.dtype == torch.float64
    torch.testing.assert_close(closed.sum(1), torch.ones(n, dtype=torch.float64))
    rounding = 1e-5 * G.numel()
    for steps in (10, 25):
        P = nerve_propagate(G, q, k, grid, steps=steps, affinity=form, **WALK, **opts).double()
        gap = (closed - P).abs().sum().item()
        assert gap <= 2 * n * alpha ** (steps + 1) + rounding
    P = nerve_propagate(G, q, k, grid, steps=200, affinity=form, **WALK, **opts).double()
    assert (closed - P).abs().sum().item() <= 2 * n * alpha**201 + rounding
    torch.testing.assert_close(P, closed, atol=2e-6, rtol=0)


def test_closed_form_matches_dense_transition_of_the_test():
    grid = (5, 7)
    G, q, k = random_inputs(grid, seed=11)
    S = dense_transition(G, q, k, grid, beta=WALK["beta"], c=WALK["c"], eps_self=WALK["eps_self"], form="cosine")
    expected = (1 - WALK["alpha"]) * torch.linalg.solve(torch.eye(S.shape[0], dtype=S.dtype) - WALK["alpha"] * S, G.double())
    torch.testing.assert_close(nerve_closed_form(G, q, k, grid, **WALK), expected)


def test_random_features_approach_exact_exp_cosine_as_rank_grows():
    """The positive random features are unbiased: the walk's error shrinks like 1/sqrt(rank).

    (The walk with features equals the closed form with the same features: see the tests above,
    so the cheap closed forms can stand in for long walks here.)"""
    grid = (8, 8)
    G, q, k = random_inputs(grid, heads=2, dim=16, seed=5)
    walk = dict(WALK, beta=0.9)
    exact = nerve_closed_form(G, q, k, grid, affinity="exp_cosine", temperature=0.5, **walk)
    errors = []
    for rank in (16, 512, 8192):
        draws = [nerve_closed_form(G, q, k, grid, affinity="exp_cosine", temperature=0.5, features=rank, seed=s, **walk)
                 for s in range(3)]
        errors.append(max((P - exact).abs().max().item() for P in draws))
    assert errors[0] > 2 * errors[1] > 4 * errors[2]
    assert errors[2] < 3e-3
    P = nerve_propagate(G, q, k, grid, steps=60, affinity="exp_cosine", temperature=0.5, features=512, **walk)
    torch.testing.assert_close(P.double(), exact, atol=4 * errors[1], rtol=0)


def test_half_precision_inputs_give_float32_on_their_device():
    grid = (5, 7)
    G, q, k = random_inputs(grid, seed=2)
    P = nerve_propagate(G.half(), q.half(), k.bfloat16(), grid, steps=10, affinity="exp_cosine", **WALK)
    expected = nerve_propagate(G.half().float(), q.half().float(), k.bfloat16().float(), grid, steps=10,
                               affinity="exp_cosine", **WALK)
    assert P.dtype == torch.float32 and P.device == q.device
    torch.testing.assert_close(P, expected)


def test_zero_steps_return_G():
    grid = (5, 7)
    G, q, k = random_inputs(grid, seed=4)
    torch.testing.assert_close(nerve_propagate(G, q, k, grid, steps=0, affinity="relu_cosine", **WALK), G)


# ---- entropy weights ----------------------------------------------------------------------------

def partition_and_noise_heads(grid=(8, 8), dim=16, seed=0):
    """Head 0 sees a planted left/right split (region embedding + small noise); head 1 is pure noise."""
    g = torch.Generator().manual_seed(seed)
    h, w = grid
    region = (torch.arange(w) >= w // 2).long().repeat(h)
    centres = 3 * torch.randn(2, dim, generator=g)
    planted = centres[region] + 0.3 * torch.randn(h * w, dim, generator=g)
    planted_k = centres[region] + 0.3 * torch.randn(h * w, dim, generator=g)
    q = torch.stack([planted, torch.randn(h * w, dim, generator=g)])
    k = torch.stack([planted_k, torch.randn(h * w, dim, generator=g)])
    truth = torch.nn.functional.one_hot(region, 2).double()
    G = (0.6 * truth + 0.4 * torch.rand(h * w, 2, generator=g, dtype=torch.float64))
    return (G / G.sum(1, keepdim=True)).float(), q, k


def test_entropy_weights_equal_softmax_of_minus_c_times_mean_entropy():
    g = torch.Generator().manual_seed(1)
    P1 = torch.softmax(torch.randn(4, 30, 5, generator=g, dtype=torch.float64), -1)
    P1[0, 0] = torch.tensor([1.0, 0, 0, 0, 0], dtype=torch.float64)
    entropy = [-sum(p * math.log(p) for p in row.tolist() if p > 0) for head in P1 for row in head]
    mean = torch.tensor(entropy, dtype=torch.float64).reshape(4, 30).mean(1)
    expected = torch.exp(-2.5 * mean) / torch.exp(-2.5 * mean).sum()
    torch.testing.assert_close(entropy_weights(P1, 2.5), expected)


@pytest.mark.parametrize("form,opts", FORMS[2:], ids=FORM_IDS[2:])
def test_noise_head_weighs_less_than_planted_partition_head(form, opts):
    """Not for `cosine` under either sign handling: half the pure-noise head's cosines are negative,
    so its rows fall back (to self-loops under the guard), its one-step walk is about G itself, and
    no averaging head can have a lower entropy than that (see test_cosine_noise_head_that_does_nothing_wins)."""
    G, q, k = partition_and_noise_heads()
    w = head_weights(G, q, k, (8, 8), beta=0.8, c=10.0, eps_self=0.1, affinity=form, **opts)
    assert w[0] > w[1]
    uniform = head_weights(G, q, k, (8, 8), beta=0.8, c=0.0, eps_self=0.1, affinity=form, **opts)
    torch.testing.assert_close(uniform, torch.full((2,), 0.5))


def test_cosine_noise_head_that_does_nothing_wins():
    """The known weakness of eq. 13 that the sweep's worst cases come from (docs/method.md,
    "Entropy weights"): a head whose rows all fall back does not move G, and wins the weights."""
    G, q, k = partition_and_noise_heads()
    for options in ({}, {"sign_handling": "row_sum", "row_floor": 0.5}):
        found = walk_diagnostics(G, q, k, (8, 8), beta=0.8, c=10.0, eps_self=0.1, **options)
        assert found["global_rows_kept"] == [1.0, 0.0]
        assert found["head_weights"][1] > found["head_weights"][0]


# ---- sign guards --------------------------------------------------------------------------------

def adversarial_cosine_inputs(grid=(6, 5), seed=7):
    """Keys opposite to the queries, plus noise: most cosines and many row sums are negative."""
    g = torch.Generator().manual_seed(seed)
    G, q, _ = random_inputs(grid, seed=seed)
    k = -q + 0.5 * torch.randn(q.shape, generator=g)
    k[1, :3] = q[1, :3]  # a few rows with positive neighbour cosines
    return G, q, k


def test_cosine_sign_guard_keeps_walk_finite_and_equal_to_closed_form():
    grid = (6, 5)
    G, q, k = adversarial_cosine_inputs(grid)
    P = nerve_propagate(G, q, k, grid, steps=200, **WALK)
    found = walk_diagnostics(G, q, k, grid, beta=WALK["beta"], c=WALK["c"], eps_self=WALK["eps_self"])
    assert min(found["global_rows_kept"]) < 0.5 and min(found["local_rows_kept"]) < 1  # the guard acted
    assert torch.isfinite(P).all() and (P >= 0).all()
    torch.testing.assert_close(P.sum(1), torch.ones(G.shape[0]), atol=1e-5, rtol=0)
    closed = nerve_closed_form(G, q, k, grid, **WALK)
    torch.testing.assert_close(P.double(), closed, atol=2e-6, rtol=0)
    S = dense_transition(G, q, k, grid, beta=WALK["beta"], c=WALK["c"], eps_self=WALK["eps_self"], form="cosine")
    torch.testing.assert_close(nerve_propagate(G, q, k, grid, steps=10, **WALK).double(),
                               dense_truncated_walk(S, G, WALK["alpha"], 10), atol=2e-6, rtol=1e-5)
    assert torch.isfinite(head_weights(G, q, k, grid, beta=0.6, c=5.0, eps_self=0.1)).all()


def test_zero_sum_local_rows_become_self_loops():
    grid = (4, 4)
    G, q, _ = random_inputs(grid, seed=9)
    k = -q  # every neighbour cosine of relu_cosine is 0; with eps_self = 0 every local row is empty
    P = nerve_propagate(G, q, k, grid, alpha=0.8, beta=0.5, c=1.0, eps_self=0.0, steps=300, affinity="relu_cosine")
    found = walk_diagnostics(G, q, k, grid, beta=0.5, c=1.0, eps_self=0.0, affinity="relu_cosine")
    assert min(found["local_rows_kept"]) < 1
    closed = nerve_closed_form(G, q, k, grid, alpha=0.8, beta=0.5, c=1.0, eps_self=0.0, affinity="relu_cosine")
    torch.testing.assert_close(P.double(), closed, atol=2e-6, rtol=0)


# ---- arguments ----------------------------------------------------------------------------------

def test_unknown_affinity_options_are_named():
    grid = (5, 7)
    G, q, k = random_inputs(grid)
    with pytest.raises(TypeError, match="temprature"):
        nerve_propagate(G, q, k, grid, steps=2, affinity="exp_cosine", temprature=0.1, **WALK)
    with pytest.raises(ValueError, match="exp_cosine only"):
        nerve_propagate(G, q, k, grid, steps=2, affinity="relu_cosine", features=8, **WALK)
    with pytest.raises(ValueError, match="unknown affinity"):
        nerve_closed_form(G, q, k, grid, affinity="softmax", **WALK)
    with pytest.raises(ValueError, match="grid"):
        nerve_propagate(G, q, k, (7, 5 + 1), steps=2, **WALK)


# ---- engine adapter -----------------------------------------------------------------------------


# ---- batches ------------------------------------------------------------------------------------


