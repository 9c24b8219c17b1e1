"""Confusion matrices and dataset-level mIoU (docs/method.md, section 13).

The matrix is K x (K + 1): rows are GT classes, columns predicted classes plus one last column for
pixels the labeler left unlabeled (255). An unlabeled pixel on a scored GT pixel is a miss of that
GT class, so it lowers the class's IoU instead of vanishing from the figures. GT pixels equal to
`ignore_index` are never counted. Shard matrices add up to the dataset's.
"""
from __future__ import annotations

import numpy as np

UNLABELED = 255


def reduce_zero_label(gt: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """mmseg's convention for datasets whose GT id 0 means "unlabeled": 0 -> ignore, k -> k - 1."""
    out = gt.astype(np.int64) - 1
    out[(gt == 0) | (gt == ignore_index)] = ignore_index
    return out.astype(gt.dtype)


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_index: int = 255,
                     block: int = 1 << 20) -> np.ndarray:
    """(K, K+1) int64 counts of (GT class, predicted class or unlabeled) over scored pixels.

    Counted `block` pixels at a time: the int64 index arrays then stay a few MB on images of any size.
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    pred, gt = pred.reshape(-1), gt.reshape(-1)
    counts = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
    for start in range(0, gt.size, block):
        counts += _block_confusion(pred[start : start + block], gt[start : start + block], num_classes, ignore_index)
    return counts


def _block_confusion(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    scored = gt != ignore_index
    g = gt[scored].astype(np.int64)
    p = pred[scored].astype(np.int64)
    if g.size and g.max() >= num_classes:
        raise ValueError(f"ground truth holds class {g.max()} but there are {num_classes} classes")
    p = np.where(p == UNLABELED, num_classes, p)
    if p.size and p.max() > num_classes:
        raise ValueError(f"prediction holds class {p.max()} but there are {num_classes} classes")
    counts = np.bincount(g * (num_classes + 1) + p, minlength=num_classes * (num_classes + 1))
    return counts.reshape(num_classes, num_classes + 1)


def per_class_iou(cm: np.ndarray) -> np.ndarray:
    """IoU per class as a fraction; NaN where the class has no union (never in GT nor predicted)."""
    cm = np.asarray(cm, dtype=np.int64)
    k = cm.shape[0]
    tp = np.diag(cm[:, :k]).astype(np.float64)
    union = cm.sum(axis=1) + cm[:, :k].sum(axis=0) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def _percent(x):
    return None if x is None or np.isnan(x) else round(float(x) * 100.0, 4)


def summarize_confusion(cm: np.ndarray, class_names: list[str]) -> dict:
    """mIoU (mean over classes with non-zero union), per-class IoU, pixel accuracy, all in percent."""
    cm = np.asarray(cm, dtype=np.int64)
    if cm.shape != (len(class_names), len(class_names) + 1):
        raise ValueError(f"confusion matrix {cm.shape} does not fit {len(class_names)} classes")
    iou = per_class_iou(cm)
    total = cm.sum()
    k = cm.shape[0]
    gt_pixels = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(gt_pixels > 0, np.diag(cm[:, :k]) / np.maximum(gt_pixels, 1), np.nan)
    valid = ~np.isnan(iou)
    return {
        "miou": _percent(iou[valid].mean()) if valid.any() else None,
        "per_class_iou": {name: _percent(v) for name, v in zip(class_names, iou)},
        "aacc": _percent(np.trace(cm[:, :k]) / total) if total else None,
        "macc": _percent(np.nanmean(acc)) if (gt_pixels > 0).any() else None,
        "scored_pixels": int(total),
        "unlabeled_pixels": int(cm[:, k].sum()),
    }
