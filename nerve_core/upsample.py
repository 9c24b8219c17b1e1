"""Bilinear upsampling of class scores to the original image size, in row chunks.

A 4000x3000 image with 171 classes would need 8 GB as one float tensor; bilinear interpolation is
separable (out = Ry X Rxᵀ), so rows of the output are produced a chunk at a time from the
column-interpolated scores, with memory O(K·h·W + K·rows·W).
"""
from __future__ import annotations

from collections.abc import Iterator

import torch


def interpolation_matrix(out_size: int, in_size: int, device=None) -> torch.Tensor:
    """(out, in) matrix of 1-D linear interpolation weights, half-pixel centres.

    The same sampling as torch's `interpolate(mode="bilinear", align_corners=False)` with an
    explicit output size: source = (dst + 0.5) * in/out - 0.5, clamped at the borders.
    """
    scale = in_size / out_size
    src = ((torch.arange(out_size, device=device, dtype=torch.float64) + 0.5) * scale - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=in_size - 1)
    i1 = (i0 + 1).clamp(max=in_size - 1)
    frac = (src - i0).to(torch.float32)
    m = torch.zeros(out_size, in_size, device=device, dtype=torch.float32)
    rows = torch.arange(out_size, device=device)
    m.index_put_((rows, i0), 1 - frac, accumulate=True)
    m.index_put_((rows, i1), frac, accumulate=True)
    return m


def bilinear_chunks(
    scores: torch.Tensor, size: tuple[int, int], max_elements: int = 1 << 25
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Yield (row slice, (K, rows, W) chunk) of `scores` (K, h, w) upsampled to `size` = (H, W)."""
    k, h, w = scores.shape
    height, width = size
    scores = scores.float()
    columns = torch.einsum("khw,Ww->khW", scores, interpolation_matrix(width, w, scores.device))
    ry = interpolation_matrix(height, h, scores.device)
    rows_per_chunk = max(1, min(height, max_elements // max(1, k * width)))
    for start in range(0, height, rows_per_chunk):
        rows = slice(start, min(height, start + rows_per_chunk))
        yield rows, torch.einsum("Hh,khW->kHW", ry[rows], columns)


def upsample_chunks(scores: torch.Tensor, prepared, cfg) -> Iterator[tuple[slice, torch.Tensor]]:
    """Scores (K, h, w) -> (row slice, (K, rows, W)) chunks at the original size, per `UpsampleConfig`.

    Bilinear streams in chunks. Image-guided steps (joint bilateral upsampling, PAMR) need the
    original pixels (`prepared.guide`) and work on the whole image.
    """
    if cfg.name == "bilinear" and not cfg.pamr:
        yield from bilinear_chunks(scores, prepared.size)
        return
    guide = torch.tensor(prepared.guide, device=scores.device)  # a copy: decoded arrays may be read-only
    if cfg.name == "joint_bilateral":
        from nerve_core.upsample_jbu import joint_bilateral_upsample

        full = joint_bilateral_upsample(scores.float(), guide, cfg)
    elif cfg.name == "bilinear":
        full = torch.cat([chunk for _, chunk in bilinear_chunks(scores, prepared.size)], dim=1)
    else:
        raise ValueError(f"unknown upsample.name {cfg.name!r}; expected 'bilinear' or 'joint_bilateral'")
    if cfg.pamr:
        from nerve_core.pamr import pamr

        full = pamr(full, guide, iterations=cfg.pamr_iterations, dilations=tuple(cfg.pamr_dilations))
    yield slice(0, full.shape[1]), full
