"""The global transitions of the sharp forms (relu_cosine, exact exp_cosine), in row blocks.

Their a_ij is not low rank, so a step costs O(N²·K) whatever we do; memory is what we control.
Rows are built `block_size` at a time (O(N·block) memory per head). For the walk, the
head-weighted global matrix Σ_h diag(coef_h / d_h) A^(h) is materialised once per call when it fits
`materialise_bytes` (512 MiB: N up to ~11,500 in float32), so each step is one N×N @ N×K product;
beyond that it is rebuilt block by block at every step (same result, H times the work).
"""
from __future__ import annotations

import torch

from nerve_core.refine.affinity import AffinitySpec, pair_affinity
from nerve_core.refine.global_lowrank import row_scale

MATERIALISE_BYTES = 512 * 2**20


def row_blocks(n: int, block: int):
    return [(start, min(start + block, n)) for start in range(0, n, block)]


def row_minimum_cosines(qh: torch.Tensor, kh: torch.Tensor, block: int) -> torch.Tensor:
    """(H, N) min_j q̂_i·k̂_j, in row blocks: detects the rows of `cosine` with a negative entry."""
    out = qh.new_empty(qh.shape[:2])
    for h in range(qh.shape[0]):
        for start, stop in row_blocks(qh.shape[1], block):
            out[h, start:stop] = (qh[h, start:stop] @ kh[h].T).amin(1)
    return out


class BlockedGlobal:
    """Per-head global rows of a non-negative, non-low-rank affinity, built block by block.

    Same interface as LowRankGlobal: usable (H, N), times_G (H, N, K), combined(coef).
    Affinities are used up to a per-form constant (pair_affinity up_to_scale): rows are normalised.
    """

    def __init__(self, qh: torch.Tensor, kh: torch.Tensor, spec: AffinitySpec, G: torch.Tensor,
                 materialise_bytes: int = MATERIALISE_BYTES):
        self.qh, self.kh, self.spec, self.materialise_bytes = qh, kh, spec, materialise_bytes
        heads, n, _ = qh.shape
        self.row_sums = qh.new_empty(heads, n)
        unnormalised = qh.new_empty(heads, n, G.shape[1])
        for h in range(heads):
            for start, stop in row_blocks(n, spec.block_size):
                a = self._rows(h, start, stop)
                self.row_sums[h, start:stop] = a.sum(1)
                unnormalised[h, start:stop] = a @ G
        self.usable = self.row_sums > 0
        self.times_G = unnormalised * row_scale(1.0, self.row_sums, self.usable)[..., None]

    def _rows(self, h: int, start: int, stop: int) -> torch.Tensor:
        return pair_affinity(self.qh[h, start:stop] @ self.kh[h].T, self.spec, up_to_scale=True)

    def combined(self, coef: torch.Tensor):
        """P -> Σ_h diag(coef_h) S_global^(h) P: one dense product per step when it fits memory."""
        scale = row_scale(coef, self.row_sums, self.usable)
        n = self.qh.shape[1]
        blocks = row_blocks(n, self.spec.block_size)

        def mixed_rows(start, stop):
            return sum(scale[h, start:stop, None] * self._rows(h, start, stop) for h in range(self.qh.shape[0]))

        if n * n * self.qh.element_size() <= self.materialise_bytes:
            matrix = torch.cat([mixed_rows(start, stop) for start, stop in blocks])
            return lambda P: matrix @ P
        return lambda P: torch.cat([mixed_rows(start, stop) @ P for start, stop in blocks])
