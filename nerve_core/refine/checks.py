"""Argument checks shared by the walk and its dense reference; errors name what is wrong."""
from __future__ import annotations


def check_inputs(G, q, k, grid, batch_allowed: bool = True) -> None:
    """Shapes of the nerve_propagate / nerve_closed_form inputs, one image ((N, K) and (H, N, D)) or,
    where allowed, a batch ((B, N, K) and (B, H, N, D)); errors name what is wrong."""
    h, w = grid
    ranks = (2, 3) if batch_allowed else (2,)
    if G.ndim not in ranks or G.shape[-2] != h * w:
        expected = "(N, K) or (B, N, K)" if batch_allowed else "(N, K)"
        raise ValueError(f"G must be {expected} with N = h*w = {h * w} for grid {tuple(grid)}, got {tuple(G.shape)}")
    lead = "B, " * (G.ndim - 2)
    if q.ndim != G.ndim + 1 or q.shape != k.shape or q.shape[-2] != h * w or q.shape[: G.ndim - 2] != G.shape[:-2]:
        raise ValueError(f"q and k must both be ({lead}H, N={h * w}, D) for G {tuple(G.shape)}, got {tuple(q.shape)} and {tuple(k.shape)}")


def check_walk(alpha, beta, eps_self, steps=0) -> None:
    """The scalar parameters of the walk (docs/method.md, "NERVE")."""
    if not 0 <= alpha < 1:
        raise ValueError(f"alpha must be in [0, 1), got {alpha}")
    if not 0 <= beta <= 1:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    if not eps_self >= 0:
        raise ValueError(f"eps_self must be >= 0, got {eps_self}")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps}")
