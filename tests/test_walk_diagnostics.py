"""walk_diagnostics against hand counts on q, k built with known shares of negative cosines and of
refused rows (docs/method.md, "Walk diagnostics")."""
from __future__ import annotations

import math

import pytest
import torch

from nerve_core.refine.random_walk import head_weights, nerve_propagate, walk_diagnostics

GRID = (2, 3)
E1, E2, E3 = torch.eye(3)
U = torch.tensor([-1.0, 0.0, 1.0]) / math.sqrt(2)
WALK = dict(beta=0.5, c=2.0, eps_self=0.1)


def hand_built():
    """Two heads on 6 nodes, D = 3.

    Head 0: every query e1, keys 4 × e1 and 2 × (−e1): each row's cosines are four +1 and two −1
    (negatives 12 of 36; sum 2, absolute sum 6).
    Head 1: keys 5 × e1 and u = (−e1 + e3)/√2; queries e1, e1, e3, e3, e2, −e1:
      e1 rows: 1,1,1,1,1,−1/√2 (1 negative; sum 4.29, absolute 5.71): guard refuses, row_sum keeps
      e3 rows: 0,0,0,0,0,+1/√2 (no negative; sum 0.71 > 0): both keep
      e2 row:  all 0 (sum 0): both refuse
      −e1 row: five −1, +1/√2 (5 negatives; sum < 0): both refuse
    so 2 + 5 = 7 negatives of 36; guard keeps 2 rows of 6, row_sum (row_floor 0.25) keeps 4.
    """
    q = torch.stack([torch.stack([E1] * 6), torch.stack([E1, E1, E3, E3, E2, -E1])])
    k = torch.stack([torch.stack([E1] * 4 + [-E1] * 2), torch.stack([E1] * 5 + [U])])
    G = torch.softmax(torch.randn(6, 3, generator=torch.Generator().manual_seed(0)), 1)
    return G, q, k


def test_diagnostics_equal_hand_counts_under_both_sign_handlings():
    G, q, k = hand_built()
    guard = walk_diagnostics(G, q, k, GRID, **WALK)
    signed = walk_diagnostics(G, q, k, GRID, **WALK, sign_handling="row_sum", row_floor=0.25)
    for found in (guard, signed):
        assert found["negative_fraction"] == pytest.approx([12 / 36, 7 / 36])
        assert set(found) == {"head_weights", "negative_fraction", "global_rows_kept", "local_rows_kept"}
    assert guard["global_rows_kept"] == pytest.approx([0.0, 2 / 6])
    assert signed["global_rows_kept"] == pytest.approx([1.0, 4 / 6])
    # A stricter floor refuses head 0's rows (sum 2 < 0.5 · 6) and keeps head 1's e1 rows (4.29 >= 2.85).
    strict = walk_diagnostics(G, q, k, GRID, **WALK, sign_handling="row_sum", row_floor=0.5)
    assert strict["global_rows_kept"] == pytest.approx([0.0, 4 / 6])
    assert guard["head_weights"] == pytest.approx(head_weights(G, q, k, GRID, **WALK).tolist())


def test_negative_fraction_is_a_property_of_the_cosines_not_of_the_form():
    G, q, k = hand_built()
    for form in ("shifted_cosine", "relu_cosine", "exp_cosine"):
        found = walk_diagnostics(G, q, k, GRID, **WALK, affinity=form)
        assert found["negative_fraction"] == pytest.approx([12 / 36, 7 / 36]), form
        # non-negative forms refuse only zero-sum rows: relu_cosine's e2 row of head 1 (its −e1 row keeps
        # max(1/√2, 0) > 0); the shifted and exponential forms have no zero row
        expected = [1.0, 5 / 6] if form == "relu_cosine" else [1.0, 1.0]
        assert found["global_rows_kept"] == pytest.approx(expected), form


def test_mass_moved_is_the_mean_l1_change_per_node():
    G, q, k = hand_built()
    G = torch.nn.functional.one_hot(torch.zeros(6, dtype=torch.long), 3).float()  # all class 0
    P = G.clone()
    P[3:] = torch.tensor([0.0, 1.0, 0.0])  # half the nodes moved all their mass: 2 each
    assert walk_diagnostics(G, q, k, GRID, **WALK, P=P)["mass_moved"] == pytest.approx(1.0)
    assert walk_diagnostics(G, q, k, GRID, **WALK, P=G)["mass_moved"] == 0.0


@pytest.mark.parametrize("sign_handling", ["guard", "row_sum"])
def test_propagate_returns_the_diagnostics_of_its_own_walk(sign_handling):
    g = torch.Generator().manual_seed(3)
    G = torch.softmax(torch.randn(2, 20, 4, generator=g), -1)
    q, k = torch.randn(2, 3, 20, 5, generator=g) + 0.8, torch.randn(2, 3, 20, 5, generator=g) + 0.8
    P, found = nerve_propagate(G, q, k, (4, 5), alpha=0.8, steps=12, diagnostics=True, sign_handling=sign_handling, **WALK)
    assert len(found) == 2
    for b in range(2):
        alone = walk_diagnostics(G[b], q[b], k[b], (4, 5), **WALK, P=P[b], sign_handling=sign_handling)
        assert set(found[b]) == set(alone)
        for key, value in alone.items():
            assert found[b][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    torch.testing.assert_close(P, nerve_propagate(G, q, k, (4, 5), alpha=0.8, steps=12, sign_handling=sign_handling, **WALK))


def test_a_mostly_positive_head_loses_its_rows_to_the_guard_but_not_to_the_signed_walk():
    """Random q, k with a shared offset: most cosines are positive, yet nearly every row holds a
    negative one, so the guard keeps almost no global row; the signed walk keeps most of them."""
    g = torch.Generator().manual_seed(0)
    offset = 0.6 * torch.randn(1, 1, 16, generator=g)
    q, k = torch.randn(1, 120, 16, generator=g) + offset, torch.randn(1, 120, 16, generator=g) + offset
    G = torch.softmax(torch.randn(120, 3, generator=g), 1)
    guard = walk_diagnostics(G, q, k, (10, 12), **WALK)
    signed = walk_diagnostics(G, q, k, (10, 12), **WALK, sign_handling="row_sum")
    assert 0.1 < guard["negative_fraction"][0] < 0.4
    assert guard["global_rows_kept"][0] < 0.1 < 0.8 < signed["global_rows_kept"][0]
