"""The random walk tests' shared inputs: the affinity forms with their options, grids, walk settings."""
from __future__ import annotations

import torch

FORMS = [
    ("cosine", {}),
    ("cosine", {"sign_handling": "row_sum", "row_floor": 0.1}),
    ("shifted_cosine", {}),
    ("relu_cosine", {"power": 2.0}),
    ("exp_cosine", {"temperature": 0.2}),
    ("exp_cosine", {"temperature": 0.2, "features": 32, "seed": 3}),
]


FORM_IDS = ["cosine", "cosine_signed", "shifted", "relu_p2", "exp", "exp_rf32"]


GRIDS = [(5, 7), (8, 8), (12, 9)]


WALK = dict(alpha=0.9, beta=0.6, c=5.0, eps_self=0.1)


def random_inputs(grid, heads=3, dim=8, classes=4, seed=0, shared=1.5):
    """G row-stochastic; q, k with a shared direction per head so most cosines are positive
    (otherwise the sign guard sends nearly every `cosine` row to the local transition)."""
    g = torch.Generator().manual_seed(seed)
    n = grid[0] * grid[1]
    G = torch.softmax(2 * torch.randn(n, classes, generator=g), 1)
    mean = shared * torch.randn(heads, 1, dim, generator=g)
    q = torch.randn(heads, n, dim, generator=g) + mean
    k = torch.randn(heads, n, dim, generator=g) + mean
    return G, q, k
