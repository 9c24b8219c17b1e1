"""The global transitions of the low-rank forms, applied through their factors (eq. 20-22).

S_global^(h) = diag(1/d_h) Φ_h Ψ_hᵀ with d_h = Φ_h (Ψ_hᵀ 1): applying it to P as
Φ_h (Ψ_hᵀ P) / d_h costs O(N·R·K) and never forms an N×N matrix.
"""
from __future__ import annotations

from collections.abc import Callable

import torch


def row_scale(coef, row_sums: torch.Tensor, usable: torch.Tensor) -> torch.Tensor:
    """coef / d on usable rows, 0 on rows that fall back to the local transition."""
    return torch.where(usable, coef / torch.where(usable, row_sums, 1), 0)


class LowRankGlobal:
    """Per-head global rows of a low-rank affinity a_ij = φ_i·ψ_j.

    phi, psi (B, H, N, R) per image and head; G (B, N, K). usable (B, H, N): the rows that become
    transitions, `usable_of(row sums)` (default: a positive sum; the cosine form passes its sign
    handling, see affinity.usable_rows); times_G (B, H, N, K): S_global^(h) G on usable rows, 0 on
    the others (they fall back to the local transition).
    """

    def __init__(self, phi: torch.Tensor, psi: torch.Tensor, G: torch.Tensor,
                 usable_of: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.phi, self.psi = phi, psi
        self.row_sums = (phi @ psi.sum(-2).unsqueeze(-1)).squeeze(-1)
        self.usable = self.row_sums > 0 if usable_of is None else usable_of(self.row_sums) & (self.row_sums > 0)
        self.times_G = (phi @ (psi.transpose(-1, -2) @ G[:, None])) * row_scale(1.0, self.row_sums, self.usable)[..., None]

    def combined(self, coef: torch.Tensor):
        """P (B, N, K) -> Σ_h diag(coef_h) S_global^(h) P as ONE (N, H·R) @ ((H·R, N) @ P) product
        per image, batched over the images.

        The per-row coefficients coef (B, H, N) (entropy weight, β, α, 1/d) are folded into the
        query side once.
        """
        batch, heads, n, rank = self.phi.shape
        left = (self.phi * row_scale(coef, self.row_sums, self.usable)[..., None]).transpose(1, 2).reshape(batch, n, heads * rank)
        right_t = self.psi.transpose(-1, -2).reshape(batch, heads * rank, n)
        return lambda P: left @ (right_t @ P)
