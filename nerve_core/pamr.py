"""Pixel-adaptive mask refinement (PAMR; Araslanov & Roth, CVPR 2020), NACLIP's optional post-process.

Every pixel i gets fixed weights over its neighbours j — the 8 outer taps of a 3x3 window at each
dilation d (replicate padding at the borders):

    a_ij = softmax_j( -mean_c |I_ic - I_jc| / (0.1 · σ_ic) )

where σ_ic is the (unbiased) standard deviation of channel c over the 9 taps of every dilation
(centre included once per dilation). The mask is then propagated `iterations` times:
m_i <- Σ_j a_ij m_j. Dividing by the local spread makes the affinity invariant to the image's
per-channel scale and offset, so raw RGB and CLIP-normalised pixels give the same weights.
NACLIP uses 10 iterations with dilations (8, 16) on its logits.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

_OUTER_TAPS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
_TEMPERATURE = 0.1  # PAMR's scale on the local standard deviation
_EPS = 1e-8


def _as_image_batch(image, batch: int, size: tuple[int, int]) -> torch.Tensor:
    """(H, W, 3) or (B, H, W, 3) uint8/float image -> (B, 3, H, W) float32 at `size`."""
    image = torch.as_tensor(np.asarray(image)) if not isinstance(image, torch.Tensor) else image
    if image.dim() == 3:
        image = image[None]
    if image.dim() != 4 or image.shape[-1] != 3:
        raise ValueError(f"image must be (H, W, 3) or (B, H, W, 3); got {tuple(image.shape)}")
    if image.shape[0] not in (1, batch):
        raise ValueError(f"{image.shape[0]} images for a batch of {batch} masks")
    pixels = image.permute(0, 3, 1, 2).float().expand(batch, -1, -1, -1)
    if tuple(pixels.shape[-2:]) != tuple(size):
        pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False)
    return pixels


def _taps(x: torch.Tensor, dilation: int, offsets) -> list[torch.Tensor]:
    """Views of x (B, C, H, W) read at each (dy·d, dx·d) of `offsets`, borders replicated (one pad)."""
    h, w = x.shape[-2:]
    padded = F.pad(x, [dilation] * 4, mode="replicate")
    return [padded[..., dilation * (1 + dy) : dilation * (1 + dy) + h, dilation * (1 + dx) : dilation * (1 + dx) + w]
            for dy, dx in offsets]


def pamr_affinity(pixels: torch.Tensor, dilations: tuple[int, ...]) -> torch.Tensor:
    """(P, B, 1, H, W) weights of the P = 8·len(dilations) neighbours (order: dilations, then
    _OUTER_TAPS), summing to 1 over P at every pixel."""
    all_taps = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    sigma = torch.stack([t for d in dilations for t in _taps(pixels, d, all_taps)], dim=2).std(dim=2)
    scale = _EPS + _TEMPERATURE * sigma  # (B, 3, H, W)
    logits = torch.stack(
        [-((t - pixels).abs() / scale).mean(dim=1, keepdim=True) for d in dilations for t in _taps(pixels, d, _OUTER_TAPS)]
    )
    return torch.softmax(logits, dim=0)


def pamr(logits: torch.Tensor, image, iterations: int = 10, dilations: tuple[int, ...] = (8, 16)) -> torch.Tensor:
    """Refine (K, H, W) or (B, K, H, W) logits/probabilities with the image's local affinities."""
    squeeze = logits.dim() == 3
    mask = logits[None] if squeeze else logits
    if mask.dim() != 4:
        raise ValueError(f"logits must be (K, H, W) or (B, K, H, W); got {tuple(logits.shape)}")
    dtype = mask.dtype
    mask = mask.float()
    pixels = _as_image_batch(image, mask.shape[0], tuple(mask.shape[-2:])).to(mask.device)
    weights = pamr_affinity(pixels, tuple(dilations))
    for _ in range(iterations):
        neighbours = [t for d in dilations for t in _taps(mask, d, _OUTER_TAPS)]
        refined = torch.zeros_like(mask)
        for weight, tap in zip(weights, neighbours):
            refined.addcmul_(weight, tap)
        mask = refined
    mask = mask.to(dtype)
    return mask[0] if squeeze else mask
