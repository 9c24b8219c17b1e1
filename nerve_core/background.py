"""From per-pixel class scores to class ids, with the dataset's background rule (docs/method.md,
"Background rules").

`scores` rows are in the order of `classes` (global class ids); every rule returns global ids and
the score of the winning label (the confidence). The protocol rules take the scores as they come:

  threshold    open vocabulary (NACLIP): argmax; background where the top class probability
               (max over synonyms of a softmax over all prompts, never renormalised over classes)
               is below `threshold`.
  voc_squared  WSSS on VOC (iSeg): the foreground maps are min-max normalised per class over the
               image, background scores (1 − max_c p_c)², argmax over [background, labels].
  coco_cutoff  WSSS on COCO (iSeg): min-max normalised foreground scores below `cutoff` are zeroed,
               argmax; background where nothing is left.
  argmax       plain argmax over the classes given.

The `*_renormalised` rules are this engine's earlier behaviour, kept by name: the scores are first
renormalised over the classes at each pixel (background words included), then the same test
without any min-max normalisation.
"""
from __future__ import annotations

import torch

from nerve_core.config import BackgroundConfig

PROTOCOL_RULES = ("threshold", "voc_squared", "coco_cutoff", "argmax")
RENORMALISED_RULES = ("threshold_renormalised", "voc_squared_renormalised", "coco_cutoff_renormalised")
RULES = PROTOCOL_RULES + RENORMALISED_RULES
MINMAX_RULES = ("voc_squared", "coco_cutoff")  # WSSS: per-class ranges over the whole image, no background map


def check_rule(cfg: BackgroundConfig) -> None:
    if cfg.rule not in RULES:
        raise ValueError(f"unknown background rule {cfg.rule!r}; expected one of {RULES}")


def needs_ranges(cfg: BackgroundConfig) -> bool:
    """Whether `decide` needs each class's (min, max) over the whole image (`class_ranges`)."""
    return cfg.rule in MINMAX_RULES


def softmax_classes(cfg: BackgroundConfig, mode: str, kept: list[int], num_classes: int) -> tuple[list[int], list[int]]:
    """(classes whose prompts enter CLIP's softmax, classes whose maps are kept) for one image.

    Open vocabulary: all prompts compete and all classes are kept. WSSS with a min-max rule (the
    protocol): the background words never compete, every foreground class's prompts do (so that an
    image with one label still has an informative map), and the maps of the image's labels are
    kept; the rule then scores background. Other WSSS rules: background + labels compete and are kept.
    """
    if mode == "wsss" and cfg.rule in MINMAX_RULES:
        foreground = [c for c in range(num_classes) if c != cfg.class_id]
        return foreground, [c for c in kept if c != cfg.class_id]
    return kept, kept


def class_ranges(chunks) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class (min, max) over the row chunks (K, rows, W) of one image."""
    lows, highs = zip(*[(c.flatten(1).amin(1), c.flatten(1).amax(1)) for c in chunks])
    return torch.stack(lows).amin(0), torch.stack(highs).amax(0)


def minmax(scores: torch.Tensor, ranges: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """(scores − min) / (max − min) per class; a constant map becomes 0 (it singles out no pixel)."""
    low, high = (r.reshape(-1, *([1] * (scores.ndim - 1))) for r in ranges)
    span = high - low
    return torch.where(span > 0, (scores - low) / torch.where(span > 0, span, 1), torch.zeros_like(scores))


def decide(scores: torch.Tensor, classes: list[int], cfg: BackgroundConfig,
           ranges: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """scores (K', ...) -> (labels, confidence), each shaped like scores[0]. The min-max rules need
    `ranges` (class_ranges over the whole image) unless the chunk is the whole image."""
    check_rule(cfg)
    ids = torch.as_tensor(classes, device=scores.device, dtype=torch.long)
    bg = torch.tensor(cfg.class_id, device=scores.device)
    if cfg.rule in RENORMALISED_RULES:
        scores = scores / scores.sum(0, keepdim=True).clamp_min(1e-12)
    if cfg.rule in ("threshold", "argmax", "threshold_renormalised"):
        conf, idx = scores.max(dim=0)
        labels = ids[idx]
        if cfg.rule != "argmax" and cfg.class_id >= 0:
            labels = torch.where(conf < cfg.threshold, bg, labels)
        return labels, conf
    foreground = [i for i, c in enumerate(classes) if c != cfg.class_id]
    if not foreground:
        return bg.expand(scores.shape[1:]).clone(), torch.ones(scores.shape[1:], device=scores.device)
    fg, fg_ids = scores[foreground], ids[foreground]
    if cfg.rule in MINMAX_RULES:
        fg = minmax(fg, tuple(r[foreground] for r in (ranges or class_ranges([scores]))))
    best, idx = fg.max(dim=0)
    if cfg.rule.startswith("voc_squared"):
        bg_score = (1 - best) ** 2
        # the protocol's argmax over [background, labels] gives a tie to background (index 0)
        is_bg = bg_score >= best if cfg.rule == "voc_squared" else bg_score > best
        return torch.where(is_bg, bg, fg_ids[idx]), torch.where(is_bg, bg_score, best)
    # coco_cutoff: scores below the cutoff are zeroed; a pixel with nothing left is background.
    is_bg = best < cfg.cutoff
    return torch.where(is_bg, bg, fg_ids[idx]), torch.where(is_bg, 1 - best, best)
