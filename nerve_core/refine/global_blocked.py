"""The global transitions of the sharp forms (relu_cosine, exact exp_cosine), in row blocks.

Their a_ij is not low rank, so a step costs O(N²·K) whatever we do; memory is what we control.
Rows are built `block_size` at a time (O(N·block) memory per head). For the walk, the
head-weighted global matrix Σ_h diag(coef_h / d_h) A^(h) is materialised once per call when it fits
`materialise_bytes` (512 MiB: N up to ~11,500 in float32), so each step is one N×N @ N×K product;
beyond that it is rebuilt block by block at every step (same result, H times the work).
"""
from __future__ import annotations

import itertools
from typing import NamedTuple

import torch

from nerve_core.refine.affinity import AffinitySpec, pair_affinity
from nerve_core.refine.global_lowrank import row_scale

MATERIALISE_BYTES = 512 * 2**20


def row_blocks(n: int, block: int):
    return [(start, min(start + block, n)) for start in range(0, n, block)]


class CosineRows(NamedTuple):
    """Per-row statistics of one head's cosines cos_ij = q̂_i·k̂_j, each (..., N)."""

    minimum: torch.Tensor  # min_j cos_ij
    negatives: torch.Tensor  # #{j : cos_ij < 0}
    absolute: torch.Tensor  # Σ_j |cos_ij|


def cosine_row_stats(qh: torch.Tensor, kh: torch.Tensor, max_elements: int = 2**26) -> CosineRows:
    """Row minimum, negative count and absolute sum of the cosines of qh, kh (..., N, D).

    What the sign handling and the walk diagnostics need of the N×N cosines, which are never kept:
    all heads (and images) at once, in row blocks of at most `max_elements` cosines (2^26: 256 MiB
    in float32), so that a batch costs a few products rather than a few per head.
    """
    n = qh.shape[-2]
    heads = qh.numel() // (n * qh.shape[-1])  # all heads of all images
    rows = max(1, max_elements // (heads * n))
    parts = []
    for start, stop in row_blocks(n, rows):
        cos = qh[..., start:stop, :] @ kh.transpose(-1, -2)
        parts.append((cos.amin(-1), (cos < 0).sum(-1), cos.abs().sum(-1)))
    return CosineRows(*(torch.cat(column, -1) for column in zip(*parts)))


class BlockedGlobal:
    """Per-head global rows of a non-negative, non-low-rank affinity, built block by block.

    Same interface as LowRankGlobal: qh, kh (B, H, N, D), G (B, N, K); usable (B, H, N), times_G
    (B, H, N, K), combined(coef). Affinities are used up to a per-form constant (pair_affinity
    up_to_scale): rows are normalised.
    """

    def __init__(self, qh: torch.Tensor, kh: torch.Tensor, spec: AffinitySpec, G: torch.Tensor,
                 materialise_bytes: int = MATERIALISE_BYTES):
        self.qh, self.kh, self.spec, self.materialise_bytes = qh, kh, spec, materialise_bytes
        batch, heads, n, _ = qh.shape
        self.row_sums = qh.new_empty(batch, heads, n)
        unnormalised = qh.new_empty(batch, heads, n, G.shape[-1])
        for b, h in itertools.product(range(batch), range(heads)):
            for start, stop in row_blocks(n, spec.block_size):
                a = self._rows(b, h, start, stop)
                self.row_sums[b, h, start:stop] = a.sum(1)
                unnormalised[b, h, start:stop] = a @ G[b]
        self.usable = self.row_sums > 0
        self.times_G = unnormalised * row_scale(1.0, self.row_sums, self.usable)[..., None]

    def _rows(self, b: int, h: int, start: int, stop: int) -> torch.Tensor:
        return pair_affinity(self.qh[b, h, start:stop] @ self.kh[b, h].T, self.spec, up_to_scale=True)

    def combined(self, coef: torch.Tensor):
        """P (B, N, K) -> Σ_h diag(coef_h) S_global^(h) P: one dense product per image and step when
        the B matrices fit memory."""
        scale = row_scale(coef, self.row_sums, self.usable)
        batch, heads, n, _ = self.qh.shape
        blocks = row_blocks(n, self.spec.block_size)

        def mixed_rows(b, start, stop):
            return sum(scale[b, h, start:stop, None] * self._rows(b, h, start, stop) for h in range(heads))

        if batch * n * n * self.qh.element_size() <= self.materialise_bytes:
            matrices = torch.stack([torch.cat([mixed_rows(b, start, stop) for start, stop in blocks]) for b in range(batch)])
            return lambda P: matrices @ P
        return lambda P: torch.stack(
            [torch.cat([mixed_rows(b, start, stop) @ P[b] for start, stop in blocks]) for b in range(batch)]
        )
