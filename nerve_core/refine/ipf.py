"""Iterative proportional fitting: a positive matrix made (approximately) doubly stochastic.

DSLO turns the layer-averaged SD attention into a Markov transition matrix whose stationary
distribution is uniform (its "degenerate" distribution): rows and columns must both sum to one.
Sinkhorn-Knopp / IPF alternates row and column normalisation; for a strictly positive matrix it
converges to the unique doubly stochastic diag(r) A diag(c).
"""
from __future__ import annotations

import torch


def ipf_doubly_stochastic(a: torch.Tensor, iterations: int) -> torch.Tensor:
    """Return a new (N, N) matrix after `iterations` rounds of (row, then column) normalisation.

    Ending on a column step makes the columns sum to 1 exactly, so the uniform distribution is an
    exact fixed point of f -> f T; the rows sum to 1 up to the remaining IPF error.
    """
    if a.dim() != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"IPF needs a square matrix, got {tuple(a.shape)}")
    if iterations < 1:
        raise ValueError("ipf_iterations must be >= 1")
    tiny = torch.finfo(a.dtype).tiny
    t = a.clone()
    for _ in range(iterations):
        t.div_(t.sum(dim=1, keepdim=True).clamp_min(tiny))
        t.div_(t.sum(dim=0, keepdim=True).clamp_min(tiny))
    return t
