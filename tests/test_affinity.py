"""Affinity forms, the 8-neighbour stencil and the blocked global operator, against dense formulas."""
from __future__ import annotations

import pytest
import torch

from nerve_core.refine.affinity import affinity_spec, low_rank_factors, pair_affinity, unit
from nerve_core.refine.global_blocked import BlockedGlobal, cosine_row_stats
from nerve_core.refine.stencil import apply_stencil, local_affinities, local_transitions, neighbour_index


def unit_pair(heads, n, dim, seed):
    g = torch.Generator().manual_seed(seed)
    return unit(torch.randn(heads, n, dim, generator=g)), unit(torch.randn(heads, n, dim, generator=g))


@pytest.mark.parametrize("grid", [(1, 1), (1, 4), (3, 3), (5, 7), (12, 9)])
@pytest.mark.parametrize("form", ["shifted_cosine", "relu_cosine", "exp_cosine"])
def test_local_stencil_equals_dense_eight_neighbour_matrix(grid, form):
    h, w = grid
    n = h * w
    qh, kh = unit_pair(2, n, 6, seed=n)
    spec = affinity_spec(form, {"temperature": 0.3})
    index = neighbour_index(grid)
    table, fallback = local_transitions(local_affinities(qh, kh, index, spec, eps_self=0.2), spec)
    assert not fallback.any()
    # Dense, by listing each node's neighbours from its coordinates.
    cos = torch.einsum("hid,hjd->hij", qh.double(), kh.double())
    dense = torch.zeros(2, n, n, dtype=torch.float64)
    for i in range(n):
        y, x = divmod(i, w)
        neighbours = [(y + dy) * w + (x + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                      if (dy, dx) != (0, 0) and 0 <= y + dy < h and 0 <= x + dx < w]
        corner = y in (0, h - 1) and x in (0, w - 1)
        if h > 2 and w > 2:
            assert len(neighbours) == (3 if corner else 5 if y in (0, h - 1) or x in (0, w - 1) else 8)
        dense[:, i, neighbours] = pair_affinity(cos[:, i, neighbours], spec)
        dense[:, i, i] = 0.2
    dense = dense / dense.sum(-1, keepdim=True)
    as_matrix = apply_stencil(table[None], torch.eye(n)[None], index)[0]  # row i = Σ_t table[i, t] e_{index[i, t]}
    torch.testing.assert_close(as_matrix.double(), dense, atol=1e-6, rtol=1e-5)
    P = torch.rand(2, n, 3, generator=torch.Generator().manual_seed(1))  # a batch: each P with its own table
    torch.testing.assert_close(apply_stencil(table, P, index), (dense @ P.double()).float(), atol=1e-6, rtol=1e-5)


def test_local_rows_with_negative_cosines_become_self_loops():
    grid = (3, 4)
    qh, kh = unit_pair(1, 12, 4, seed=3)
    spec = affinity_spec("cosine", {})
    raw = local_affinities(qh, kh, neighbour_index(grid), spec, eps_self=0.1)
    table, fallback = local_transitions(raw, spec)
    negative = (raw < 0).any(-1)
    assert negative.any() and torch.equal(fallback, negative)
    assert torch.equal(table[fallback].argmax(-1), torch.full((int(fallback.sum()),), 4))
    torch.testing.assert_close(table.sum(-1), torch.ones(1, 12))


def test_signed_local_rows_fall_back_only_below_the_row_floor():
    """row_sum keeps a row with negative neighbour cosines, normalised by its (signed) sum, as long
    as the sum is at least row_floor times the absolute sum; hand-made rows of 9 taps."""
    raw = torch.tensor([[0.5, -0.1, 0.3, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0],  # sum 1.0, |sum| 1.2: kept
                        [0.5, -0.4, 0.0, 0.0, 0.1, 0.0, 0.0, 0.0, 0.0],  # sum 0.2, |sum| 1.0: floor 0.25 refuses
                        [-0.5, 0.0, 0.0, 0.0, 0.1, 0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)  # sum < 0
    spec = affinity_spec("cosine", {"sign_handling": "row_sum", "row_floor": 0.25})
    table, fallback = local_transitions(raw, spec, dtype=torch.float64)
    assert fallback.tolist() == [False, True, True]
    torch.testing.assert_close(table[0], raw[0] / 1.0)
    assert table[1].tolist() == table[2].tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 0]
    guarded, guard_fallback = local_transitions(raw, affinity_spec("cosine", {}), dtype=torch.float64)
    assert guard_fallback.tolist() == [True, True, True]


def test_pair_affinities_follow_their_formulas():
    cos = torch.linspace(-1, 1, 41, dtype=torch.float64)
    assert torch.equal(pair_affinity(cos, affinity_spec("cosine", {})), cos)
    torch.testing.assert_close(pair_affinity(cos, affinity_spec("shifted_cosine", {})), (cos + 1) / 2)
    relu = pair_affinity(cos, affinity_spec("relu_cosine", {"power": 3.0}))
    torch.testing.assert_close(relu, torch.where(cos > 0, cos**3, 0))
    spec = affinity_spec("exp_cosine", {"temperature": 0.25})
    torch.testing.assert_close(pair_affinity(cos, spec), torch.exp(4 * cos))
    torch.testing.assert_close(pair_affinity(cos, spec, up_to_scale=True) * torch.exp(torch.tensor(4.0, dtype=torch.float64)),
                               torch.exp(4 * cos))


@pytest.mark.parametrize("form", ["cosine", "shifted_cosine"])
def test_low_rank_factors_reproduce_the_affinity(form):
    qh, kh = unit_pair(3, 20, 5, seed=2)
    spec = affinity_spec(form, {})
    phi, psi = low_rank_factors(qh, kh, spec)
    assert phi.shape[-1] == (5 if form == "cosine" else 6)
    torch.testing.assert_close(phi @ psi.transpose(1, 2), pair_affinity(qh @ kh.transpose(1, 2), spec))


def test_random_features_are_positive_and_reproducible():
    qh, kh = unit_pair(2, 30, 8, seed=4)
    spec = affinity_spec("exp_cosine", {"features": 40, "seed": 9, "temperature": 0.5})
    phi, psi = low_rank_factors(qh, kh, spec)
    assert phi.shape == (2, 30, 40) and (phi > 0).all() and (psi > 0).all()
    again, _ = low_rank_factors(qh.double(), kh.double(), spec)
    torch.testing.assert_close(again.float(), phi, rtol=1e-4, atol=0)
    other, _ = low_rank_factors(qh, kh, affinity_spec("exp_cosine", {"features": 40, "seed": 10, "temperature": 0.5}))
    assert not torch.allclose(other, phi)


def test_cosine_row_stats_in_blocks():
    qh, kh = unit_pair(2, 23, 4, seed=6)
    cos = qh @ kh.transpose(1, 2)
    for max_elements in (1, 5 * 2 * 23, 2**26):  # one row, 5 rows, all rows of both heads at a time
        stats = cosine_row_stats(qh, kh, max_elements)
        torch.testing.assert_close(stats.minimum, cos.amin(-1))
        assert torch.equal(stats.negatives, (cos < 0).sum(-1))
        torch.testing.assert_close(stats.absolute, cos.abs().sum(-1))


@pytest.mark.parametrize("form", ["relu_cosine", "exp_cosine"])
def test_blocked_global_equals_dense_whether_materialised_or_streamed(form):
    qh, kh = unit_pair(3, 29, 6, seed=8)
    spec = affinity_spec(form, {"block_size": 7, "temperature": 0.2, "power": 1.5})
    g = torch.Generator().manual_seed(0)
    G = torch.softmax(torch.randn(29, 4, generator=g), 1)
    coef = torch.rand(3, 29, generator=g)
    A = pair_affinity(torch.einsum("hid,hjd->hij", qh.double(), kh.double()), spec)
    S = A / A.sum(-1, keepdim=True)
    expected = torch.einsum("hi,hij,jk->ik", coef.double(), S, G.double())
    P = torch.rand(29, 4, generator=g)
    for budget in (0, 2**30):
        glob = BlockedGlobal(qh[None], kh[None], spec, G[None], materialise_bytes=budget)
        torch.testing.assert_close(glob.times_G[0].double(), S @ G.double(), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(glob.combined(coef[None])(G[None])[0].double(), expected, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(glob.combined(coef[None])(P[None])[0].double(),
                                   torch.einsum("hi,hij,jk->ik", coef.double(), S, P.double()), atol=1e-6, rtol=1e-5)


def test_option_errors_name_the_option():
    with pytest.raises(TypeError, match="blocksize"):
        affinity_spec("relu_cosine", {"blocksize": 3})
    for bad in ({"temperature": 0}, {"power": -1.0}, {"features": 2.5}, {"block_size": 0}, {"sign_handling": "clip"},
                {"row_floor": 0.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            affinity_spec("exp_cosine", bad)
