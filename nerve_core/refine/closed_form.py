"""The dense reference of NERVE's walk: P_∞ = (1 − α)(I − αS)⁻¹ G (theorem 3.1), small N only.

Built on purpose from dense N×N matrices (a coordinate-distance neighbour mask, the sign handling
written on whole rows, torch.linalg.solve in float64), sharing with the fast propagation only the definitions of
the affinity forms, of the random features and of the entropy weights, so that tests comparing
the two check the factored, stencil and block machinery independently.
"""
from __future__ import annotations

import torch

from nerve_core.refine.affinity import affinity_spec, pair_affinity, random_feature_maps, unit
from nerve_core.refine.checks import check_inputs, check_walk
from nerve_core.refine.entropy import entropy_weights


def _neighbour_mask(grid, device) -> torch.Tensor:
    """(N, N) bool: j is one of i's 8 neighbours (Chebyshev distance exactly 1 on the grid)."""
    h, w = grid
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    chebyshev = torch.maximum((ys[:, None] - ys[None]).abs(), (xs[:, None] - xs[None]).abs())
    return chebyshev == 1


def _row_normalise(A: torch.Tensor, sign_handling: str, row_floor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(row-normalised A, usable rows). guard: usable iff no negative entry and a positive sum;
    row_sum: iff the sum is positive and at least row_floor times the sum of |entries|."""
    sums = A.sum(-1, keepdim=True)
    if sign_handling == "guard":
        usable = (A >= 0).all(-1) & (sums[..., 0] > 0)
    else:
        usable = (sums[..., 0] > 0) & (sums[..., 0] >= row_floor * A.abs().sum(-1))
    return A / torch.where(sums > 0, sums, 1), usable


def dense_head_transitions(G, q, k, grid, *, beta, eps_self, affinity="cosine", **affinity_options):
    """(H, N, N) S^(h) in float64, the sign handling of random_walk.py applied to dense matrices."""
    spec = affinity_spec(affinity, affinity_options)
    check_inputs(G, q, k, grid, batch_allowed=False)
    qh, kh = unit(q.double()), unit(k.double())
    n = qh.shape[1]
    cos = qh @ kh.transpose(1, 2)
    if spec.features:
        phi, psi = random_feature_maps(qh, kh, spec)
        A_global = phi @ psi.transpose(1, 2)
    else:
        A_global = pair_affinity(cos, spec)
    eye = torch.eye(n, dtype=cos.dtype, device=cos.device)
    A_local = torch.where(_neighbour_mask(grid, cos.device), pair_affinity(cos, spec), 0) + eps_self * eye
    S_global, global_ok = _row_normalise(A_global, spec.sign_handling, spec.row_floor)
    S_local, local_ok = _row_normalise(A_local, spec.sign_handling, spec.row_floor)
    S_local = torch.where(local_ok[..., None], S_local, eye)
    mixed = beta * S_global + (1 - beta) * S_local
    return torch.where(global_ok[..., None], mixed, S_local)


def nerve_closed_form(G, q, k, grid, *, alpha, beta, c, eps_self, affinity="cosine", **affinity_options):
    """(N, K) float64 P_∞ = (1 − α)(I − αS)⁻¹ G with S = Σ_h w_h S^(h), on q's device."""
    check_walk(alpha, beta, eps_self)
    S_heads = dense_head_transitions(G, q, k, grid, beta=beta, eps_self=eps_self, affinity=affinity, **affinity_options)
    G = G.to(S_heads.device, torch.float64)
    w = entropy_weights(S_heads @ G, c)
    S = (w[:, None, None] * S_heads).sum(0)
    eye = torch.eye(S.shape[0], dtype=S.dtype, device=S.device)
    return (1 - alpha) * torch.linalg.solve(eye - alpha * S, G)
