"""NERVE's random walk with every transition matrix built densely (N x N), straight from the equations (docs/method.md, sections 4-7).

The benchmark's baseline for "what the low-rank walk avoids", and its numerical cross-check: an
independent formulation (explicit matrices, explicit neighbour masks) of the same equations that
`nerve_propagate` evaluates without ever forming an N x N matrix. Memory grows as N².
"""
from __future__ import annotations

import torch


def pair_affinity(cos: torch.Tensor, form: str, *, temperature: float, power: float) -> torch.Tensor:
    """a_ij from cos_ij for one global-affinity form (docs/method.md, section 4)."""
    if form == "cosine":
        return cos
    if form == "shifted_cosine":
        return (1 + cos) / 2
    if form == "relu_cosine":
        return cos.clamp_min(0) ** power
    if form == "exp_cosine":
        return torch.exp(cos / temperature)
    raise ValueError(f"unknown affinity form {form!r}")


def neighbour_pairs(grid: tuple[int, int], device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, cols) of every ordered pair of 8-neighbours on a row-major h x w grid."""
    h, w = grid
    index = torch.arange(h * w, device=device).reshape(h, w)
    rows, cols = [], []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == dx == 0:
                continue
            src = index[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
            dst = index[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)]
            rows.append(src.reshape(-1))
            cols.append(dst.reshape(-1))
    return torch.cat(rows), torch.cat(cols)


def _row_stochastic(a: torch.Tensor) -> torch.Tensor:
    sums = a.sum(1, keepdim=True)
    if bool((sums <= 0).any()):
        raise ValueError("a row of the affinity sums to <= 0: the dense reference needs non-negative affinities")
    return a.div_(sums)


def head_transition(q, k, grid, *, beta, eps_self, form, temperature, power, pairs) -> torch.Tensor:
    """S^(h) = β rownorm(A_global) + (1 − β) rownorm(A_local) for one head's q, k (N, D)."""
    cos = torch.nn.functional.normalize(q, dim=-1) @ torch.nn.functional.normalize(k, dim=-1).T
    rows, cols = pairs
    local = torch.zeros_like(cos)
    local[rows, cols] = pair_affinity(cos[rows, cols], form, temperature=temperature, power=power)
    local.diagonal().add_(eps_self)
    glob = _row_stochastic(pair_affinity(cos, form, temperature=temperature, power=power))
    del cos
    return glob.mul_(beta).add_(_row_stochastic(local), alpha=1 - beta)


def mean_entropy(p: torch.Tensor) -> torch.Tensor:
    """−(1/N) Σ_i Σ_k p log p, with 0 log 0 = 0."""
    return -torch.special.xlogy(p, p).sum() / p.shape[0]


def dense_walk(G, q, k, grid, *, alpha, beta, c, eps_self, steps, form="cosine", temperature=0.1, power=1.0):
    """P_L of the truncated walk with S = Σ_h w_h S^(h) held as one dense N x N matrix.

    Two passes over the heads (entropies first, then the weighted sum) keep at most three N x N
    matrices alive instead of H + 1.
    """
    options = dict(beta=beta, eps_self=eps_self, form=form, temperature=temperature, power=power)
    pairs = neighbour_pairs(grid, device=G.device)
    entropies = torch.stack(
        [mean_entropy(head_transition(q[h], k[h], grid, pairs=pairs, **options) @ G) for h in range(q.shape[0])]
    )
    weights = torch.softmax(-c * entropies, dim=0)
    S = torch.zeros(G.shape[0], G.shape[0], dtype=G.dtype, device=G.device)
    for h in range(q.shape[0]):
        S.add_(head_transition(q[h], k[h], grid, pairs=pairs, **options), alpha=float(weights[h]))
    P = (1 - alpha) * G
    for _ in range(steps):
        P = (1 - alpha) * G + alpha * (S @ P)
    return P / (1 - alpha ** (steps + 1))


def dense_walk_bytes(n: int, element_size: int = 4) -> int:
    """Peak working memory of `dense_walk`: three N x N matrices (S, one head's S^(h), a temporary)."""
    return 3 * n * n * element_size
