"""Joint bilateral upsampling (Kopf et al. 2007), as DSLO uses it for its class maps.

out_p = Σ_q S_q f(‖p↓ - q‖) g(‖I_p - Ĩ_q‖) / Σ_q f(‖p↓ - q‖) g(‖I_p - Ĩ_q‖)

p: an output pixel; p↓ its (continuous) position on the low-resolution grid (half-pixel
centres, the same sampling as bilinear align_corners=False); q: low-resolution pixels with
|q_y - p↓_y| <= radius and |q_x - p↓_x| <= radius; f, g: Gaussians with sigma_spatial (in
low-resolution pixels) and sigma_range (on RGB in [0, 1]); I_p the guide at p and Ĩ_q the guide
sampled at q's centre (bilinear). DSLO's text lost its sigma and window values: they are
UpsampleConfig fields.

Memory: the output is produced a block of rows at a time and every window offset is accumulated
in turn, so temporaries are O(K · rows · W), never O(K · H · W · window). Weights are combined
in the log domain and shifted by their per-pixel maximum, so a tiny sigma_range cannot underflow
every weight of a pixel to zero.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def guide_to_float(guide) -> torch.Tensor:
    """(H, W, 3) uint8 or float image (numpy or torch) -> (3, H, W) float32 in [0, 1] for uint8."""
    guide = torch.as_tensor(np.asarray(guide)) if not isinstance(guide, torch.Tensor) else guide
    if guide.dim() != 3 or guide.shape[-1] != 3:
        raise ValueError(f"guide must be an (H, W, 3) image; got {tuple(guide.shape)}")
    scale = 255.0 if guide.dtype == torch.uint8 else 1.0
    return guide.permute(2, 0, 1).float().div_(scale)


def _low_res_positions(out_size: int, in_size: int, device) -> torch.Tensor:
    """Continuous low-resolution coordinate of every output index (half-pixel centres)."""
    return (torch.arange(out_size, device=device, dtype=torch.float32) + 0.5) * (in_size / out_size) - 0.5


def joint_bilateral_upsample(scores: torch.Tensor, guide, cfg, max_elements: int = 1 << 24) -> torch.Tensor:
    """(K, h, w) scores -> (K, H, W) guided by the (H, W, 3) image; cfg: UpsampleConfig."""
    if cfg.radius < 1 or cfg.sigma_spatial <= 0 or cfg.sigma_range <= 0:
        raise ValueError("joint bilateral upsampling needs radius >= 1 and positive sigmas")
    scores = scores.float()
    k, h, w = scores.shape
    image = guide_to_float(guide).to(scores.device)
    height, width = image.shape[-2:]
    low_guide = F.interpolate(image[None], size=(h, w), mode="bilinear", align_corners=False)[0]

    ys = _low_res_positions(height, h, scores.device)
    xs = _low_res_positions(width, w, scores.device)
    # Every q with |q - p↓| <= r lies within r of round(p↓) (|p↓ - round(p↓)| <= 1/2, q integer), so
    # 2r+1 candidates per axis suffice; out-of-range and too-far ones get weight 0 (-inf in log).
    offsets = range(-cfg.radius, cfg.radius + 1)
    spatial = -0.5 / cfg.sigma_spatial**2
    range_term = -0.5 / cfg.sigma_range**2

    def axis_candidates(pos: torch.Tensor, size: int):
        base = (pos + 0.5).floor().long()
        for o in offsets:
            q = base + o
            valid = (q >= 0) & (q < size) & ((q - pos).abs() <= cfg.radius + 1e-6)
            log_w = torch.where(valid, spatial * (q - pos) ** 2, torch.full_like(pos, -math.inf))
            yield q.clamp(0, size - 1), log_w

    x_candidates = list(axis_candidates(xs, w))
    window = len(offsets) ** 2
    out = torch.empty(k, height, width, device=scores.device)
    rows_per_block = max(1, min(height, max_elements // max(1, (k + window + 4) * width)))
    for start in range(0, height, rows_per_block):
        rows = slice(start, min(height, start + rows_per_block))
        y_candidates = list(axis_candidates(ys[rows], h))
        pixel = image[:, rows]  # (3, r, W)
        log_weights = torch.empty(window, *pixel.shape[1:], device=scores.device)
        for n, ((qy, wy), (qx, wx)) in enumerate((y, x) for y in y_candidates for x in x_candidates):
            colour = low_guide.index_select(1, qy).index_select(2, qx)  # (3, r, W)
            distance = (pixel - colour).pow_(2).sum(dim=0)
            torch.add(wy[:, None] + wx[None, :], distance, alpha=range_term, out=log_weights[n])
        weights = log_weights.sub_(log_weights.amax(dim=0, keepdim=True)).exp_()
        numerator = torch.zeros(k, *pixel.shape[1:], device=scores.device)
        for n, (qy, qx) in enumerate((y, x) for y, _ in y_candidates for x, _ in x_candidates):
            numerator.addcmul_(weights[n], scores.index_select(1, qy).index_select(2, qx))
        out[:, rows] = numerator.div_(weights.sum(dim=0))
    return out
