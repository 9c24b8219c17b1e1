"""The local transition S_local (eq. 9) as a 9-tap stencil on the node grid.

Node i's row has at most 9 non-zeros: its 8 spatial neighbours (fewer at borders and corners, no
wrap-around) and itself. Storing them as an (N, 9) table and applying them by gathering the 9
shifted rows of P costs O(N·K) per step with no sparse matrix.
"""
from __future__ import annotations

import torch

from nerve_core.refine.affinity import AffinitySpec, pair_affinity, usable_rows

OFFSETS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))
SELF_TAP = OFFSETS.index((0, 0))


def neighbour_index(grid: tuple[int, int], device=None) -> torch.Tensor:
    """(N, 9) flat row-major index of each node's tap; N (one past the end) where it leaves the grid."""
    h, w = grid
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    ys, xs = ys.reshape(-1, 1), xs.reshape(-1, 1)
    dy = torch.tensor([o[0] for o in OFFSETS], device=device)
    dx = torch.tensor([o[1] for o in OFFSETS], device=device)
    ny, nx = ys + dy, xs + dx
    inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
    return torch.where(inside, ny * w + nx, h * w)


def local_affinities(
    qh: torch.Tensor, kh: torch.Tensor, index: torch.Tensor, spec: AffinitySpec, eps_self: float
) -> torch.Tensor:
    """(..., N, 9) raw local affinities of qh, kh (..., N, D): a_ij for in-grid neighbours, eps_self
    on the self tap, 0 outside.

    Kept in float64: only 9·N·H values, and exp(cos/τ) (up to e^{1/τ}) must neither overflow nor
    swamp eps_self through rounding before the row is normalised.
    """
    n = qh.shape[-2]
    keys = torch.cat([kh, kh.new_zeros(*kh.shape[:-2], 1, kh.shape[-1])], -2)
    cos = torch.stack([(qh * keys[..., index[:, t], :]).sum(-1) for t in range(len(OFFSETS))], -1).double()
    raw = pair_affinity(cos, spec)
    raw = torch.where(index < n, raw, torch.zeros((), dtype=raw.dtype, device=raw.device))
    raw[..., SELF_TAP] = eps_self
    return raw


def local_transitions(raw: torch.Tensor, spec: AffinitySpec, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-normalise the raw local table; rows the sign handling refuses (`usable_rows`: a negative
    neighbour cosine under `guard`, a sum that is not clearly positive under `row_sum`, or eps_self = 0
    with all neighbours at 0) become a pure self-loop. Returns (table (..., N, 9), fallback (..., N) bool).
    """
    sums = raw.sum(-1)
    usable = usable_rows(sums, raw.amin(-1), raw.abs().sum(-1), spec)
    self_loop = torch.zeros_like(raw)
    self_loop[..., SELF_TAP] = 1
    table = torch.where(usable[..., None], raw / torch.where(usable, sums, 1)[..., None], self_loop)
    return table.to(dtype), ~usable


def apply_stencil(table: torch.Tensor, P: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """table (B, ..., N, 9) applied to P (B, N, K) image by image:
    out[b, ..., i] = Σ_t table[b, ..., i, t] P[b, index[i, t]]."""
    padded = torch.cat([P, P.new_zeros(P.shape[0], 1, P.shape[2])], 1)
    return torch.einsum("b...nt,bntk->b...nk", table, padded[:, index])
