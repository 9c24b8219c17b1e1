"""NACLIP's last ViT block (docs/method.md, section 2).

Neighbourhood attention replaces the last block: every token attends by key-key similarity plus
a Gaussian bonus Ω for spatially close patches, so a patch's feature comes from its own region
rather than from the image-global tokens vanilla CLIP attends to. No residual and no MLP: they
carry the global (CLS-like) signal that blurs dense predictions.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Row blocks of nn.MultiheadAttention.in_proj_weight, packed as (query, key, value).
KEY, VALUE = 1, 2


def gaussian_window(grid: tuple[int, int], sigma: float, *, device=None, dtype=torch.float32):
    """Ω, (1+hw)²: exp(−‖pos_p − pos_q‖² / (2σ²)) for patches p, q; CLS row/column zero.

    Patches are numbered row-major, as the ViT flattens them; positions are (row, column) in
    patch units, so the window is isotropic on any h×w grid.
    """
    h, w = grid
    rows = torch.arange(h, device=device, dtype=torch.float64).repeat_interleave(w)
    cols = torch.arange(w, device=device, dtype=torch.float64).repeat(h)
    pos = torch.stack([rows, cols], dim=1)
    squared = torch.cdist(pos, pos).square()
    omega = torch.zeros(h * w + 1, h * w + 1, device=device, dtype=torch.float64)
    omega[1:, 1:] = torch.exp(-squared / (2.0 * sigma**2))
    return omega.to(dtype)


def neighbourhood_block(block: nn.Module, x: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
    """NACLIP's replacement of `block` (an open_clip ResidualAttentionBlock) on tokens (B, L, D).

    out = out_proj(softmax(k kᵀ/√d + Ω) v), k and v of ln_1(x) per head; no residual, no MLP.
    The query projection is not used at all.
    """
    attn: nn.MultiheadAttention = block.attn
    y = block.ln_1(x)
    keys = split_heads(in_projection(attn, y, KEY), attn.num_heads)
    values = split_heads(in_projection(attn, y, VALUE), attn.num_heads)
    mixed = F.scaled_dot_product_attention(keys, keys, values, attn_mask=omega.to(keys.dtype))
    batch, heads, length, head_dim = mixed.shape
    mixed = mixed.transpose(1, 2).reshape(batch, length, heads * head_dim)
    return block.ls_1(attn.out_proj(mixed))


def in_projection(attn: nn.MultiheadAttention, y: torch.Tensor, part: int) -> torch.Tensor:
    """One of the query/key/value projections packed in `in_proj_weight` (rows q, k, v)."""
    width = attn.embed_dim
    rows = slice(part * width, (part + 1) * width)
    bias = None if attn.in_proj_bias is None else attn.in_proj_bias[rows]
    return F.linear(y, attn.in_proj_weight[rows], bias)


def split_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, L, D) -> (B, heads, L, D / heads)."""
    batch, length, width = t.shape
    return t.view(batch, length, heads, width // heads).transpose(1, 2)
