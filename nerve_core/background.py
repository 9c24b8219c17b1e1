"""From per-pixel class probabilities to class ids, with the dataset's background rule.

METHOD.md sections 2 and 3. `probs` columns are in the order of `classes` (global class ids);
the rules return global ids and the score of the winning label (the confidence).
"""
from __future__ import annotations

import torch

from nerve_core.config import BackgroundConfig

RULES = ("threshold", "voc_squared", "coco_cutoff", "argmax")


def decide(probs: torch.Tensor, classes: list[int], cfg: BackgroundConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """probs (K', ...) -> (labels, confidence), each shaped like probs[0]."""
    ids = torch.as_tensor(classes, device=probs.device)
    if cfg.rule not in RULES:
        raise ValueError(f"unknown background rule {cfg.rule!r}; expected one of {RULES}")
    if cfg.rule in ("threshold", "argmax"):
        conf, idx = probs.max(dim=0)
        labels = ids[idx]
        if cfg.rule == "threshold" and cfg.class_id >= 0:
            labels = torch.where(conf < cfg.threshold, torch.full_like(labels, cfg.class_id), labels)
        return labels, conf
    fg = [i for i, c in enumerate(classes) if c != cfg.class_id]
    bg_label = torch.tensor(cfg.class_id, device=probs.device)
    if not fg:
        return bg_label.expand(probs.shape[1:]).clone(), torch.ones(probs.shape[1:], device=probs.device)
    fg_probs = probs[fg]
    fg_ids = ids[fg]
    best, idx = fg_probs.max(dim=0)
    if cfg.rule == "voc_squared":
        bg_score = (1 - best) ** 2
        is_bg = bg_score > best
        return torch.where(is_bg, bg_label, fg_ids[idx]), torch.where(is_bg, bg_score, best)
    # coco_cutoff: foreground scores under the cutoff are zeroed; nothing left -> background.
    is_bg = best < cfg.cutoff
    return torch.where(is_bg, bg_label, fg_ids[idx]), torch.where(is_bg, 1 - best, best)
