"""Argument checks shared by the walk and its dense reference; errors name what is wrong."""
from __future__ import annotations


def check_inputs(G, q, k, grid) -> None:
    """Shapes of the nerve_propagate / nerve_closed_form inputs; errors name what is wrong."""
    h, w = grid
    if G.ndim != 2 or G.shape[0] != h * w:
        raise ValueError(f"G must be (N, K) with N = h*w = {h * w} for grid {tuple(grid)}, got {tuple(G.shape)}")
    if q.ndim != 3 or q.shape != k.shape or q.shape[1] != h * w:
        raise ValueError(f"q and k must both be (H, N={h * w}, D), got {tuple(q.shape)} and {tuple(k.shape)}")


def check_walk(alpha, beta, eps_self, steps=0) -> None:
    """The scalar parameters of the walk (METHOD.md section 1, steps 3-5)."""
    if not 0 <= alpha < 1:
        raise ValueError(f"alpha must be in [0, 1), got {alpha}")
    if not 0 <= beta <= 1:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    if not eps_self >= 0:
        raise ValueError(f"eps_self must be >= 0, got {eps_self}")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps}")
